//! Accounts over HTTP: register, login, logout, me, and their refusals.

use crate::support::*;
use serde_json::{json, Value};

#[tokio::test]
async fn register_login_me_and_logout() {
    let server = TestServer::start().await;
    let (status, body) = server
        .post("/api/v1/register", &json!({"username": "Ada", "password": "a long secret", "display_name": "Ada L."}))
        .await;
    assert_eq!(status, 201, "{body}");
    let user: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(user["user"], json!({"username": "ada", "display_name": "Ada L.", "role": "member"}));

    // Usernames compare case-insensitively.
    let (status, body) = server.post("/api/v1/login", &json!({"username": "ADA", "password": "a long secret"})).await;
    assert_eq!(status, 200, "{body}");
    let login: Value = serde_json::from_str(&body).unwrap();
    let token = login["token"].as_str().unwrap();
    assert!(token.len() >= 32, "token has at least 128 bits: {token}");
    assert_eq!(login["user"]["username"], "ada");

    let bearer = format!("Bearer {token}");
    let (status, body) = http(server.addr, "GET", "/api/v1/me", &[("Authorization", &bearer)], None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["user"]["display_name"], "Ada L.");

    let (status, _) = http(server.addr, "POST", "/api/v1/logout", &[("Authorization", &bearer)], None).await;
    assert_eq!(status, 204);
    let (status, body) = http(server.addr, "GET", "/api/v1/me", &[("Authorization", &bearer)], None).await;
    assert_eq!(status, 401);
    assert_eq!(http_error_code(&body), "unauthenticated");
    let (status, _) = http(server.addr, "POST", "/api/v1/logout", &[("Authorization", &bearer)], None).await;
    assert_eq!(status, 401, "a revoked token cannot log out twice");
}

#[tokio::test]
async fn registration_refuses_bad_fields_and_taken_names() {
    let server = TestServer::start().await;
    let cases = [
        json!({"username": "ab", "password": "long enough"}),
        json!({"username": "has space", "password": "long enough"}),
        json!({"username": "valid", "password": "short"}),
        json!({"username": "valid", "password": "x".repeat(1025)}),
        json!({"username": "valid", "password": "long enough", "display_name": ""}),
        json!({"username": "valid", "password": "long enough", "display_name": "tab\there"}),
    ];
    for case in cases {
        assert_http_error(&server.post("/api/v1/register", &case).await, 400, "invalid");
    }
    assert_http_error(&http(server.addr, "POST", "/api/v1/register", &[], Some("{not json")).await, 400, "bad_request");

    server.user("taken").await;
    assert_http_error(
        &server.post("/api/v1/register", &json!({"username": "TAKEN", "password": "long enough"})).await,
        409,
        "conflict",
    );
}

#[tokio::test]
async fn unknown_user_and_wrong_password_get_the_same_answer() {
    let server = TestServer::start().await;
    server.user("grace").await;
    let wrong = server.post("/api/v1/login", &json!({"username": "grace", "password": "not the password"})).await;
    let unknown = server.post("/api/v1/login", &json!({"username": "nobody", "password": "not the password"})).await;
    let malformed = server.post("/api/v1/login", &json!({"username": "!!", "password": "not the password"})).await;
    assert_eq!(wrong.0, 401);
    assert_eq!(http_error_code(&wrong.1), "unauthenticated");
    assert_eq!(wrong, unknown, "unknown user must look like a wrong password");
    assert_eq!(wrong, malformed);
}

#[tokio::test]
async fn login_attempts_are_limited_per_account_and_per_address() {
    let server = TestServer::start_with(|c| {
        c.login_attempts_per_account = 3;
        // Every attempt counts against the address, including the one the account
        // limit refuses: 1 (helper) + 2 wrong + 1 refused + 2 others = 6.
        c.login_attempts_per_address = 6;
    })
    .await;
    server.user("target").await; // one attempt used by the helper's login
    for _ in 0..2 {
        let (status, _) = server.post("/api/v1/login", &json!({"username": "target", "password": "guess guess"})).await;
        assert_eq!(status, 401);
    }
    // The account is now locked for the window, even with the right password.
    assert_http_error(
        &server.post("/api/v1/login", &json!({"username": "target", "password": "password-target"})).await,
        429,
        "rate_limited",
    );
    // Other accounts from the same address have 2 attempts left before the address limit.
    for name in ["other1", "other2"] {
        let (status, _) = server.post("/api/v1/login", &json!({"username": name, "password": "guess guess"})).await;
        assert_eq!(status, 401);
    }
    assert_http_error(
        &server.post("/api/v1/login", &json!({"username": "other3", "password": "guess guess"})).await,
        429,
        "rate_limited",
    );
}

#[tokio::test]
async fn registrations_are_limited_per_address() {
    let server = TestServer::start_with(|c| c.registrations_per_address = 2).await;
    for name in ["one", "two"] {
        let (status, _) = server.post("/api/v1/register", &json!({"username": name, "password": "long enough"})).await;
        assert_eq!(status, 201);
    }
    assert_http_error(
        &server.post("/api/v1/register", &json!({"username": "three", "password": "long enough"})).await,
        429,
        "rate_limited",
    );
}

#[tokio::test]
async fn me_refuses_missing_or_bad_tokens_and_unknown_paths_answer_in_json() {
    let server = TestServer::start().await;
    assert_http_error(&http(server.addr, "GET", "/api/v1/me", &[], None).await, 401, "unauthenticated");
    let (status, _) = http(server.addr, "GET", "/api/v1/me", &[("Authorization", "Bearer nope")], None).await;
    assert_eq!(status, 401);
    assert_http_error(&http(server.addr, "GET", "/api/v1/nothing", &[], None).await, 404, "not_found");
}
