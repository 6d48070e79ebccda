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

/// A login from the loopback address `source`.
async fn login_from(server: &TestServer, source: &str, name: &str, password: &str) -> Answer {
    let body = json!({"username": name, "password": password}).to_string();
    http_from(source, server.addr, "POST", "/api/v1/login", Some(&body)).await
}

#[tokio::test]
async fn a_stranger_guessing_passwords_cannot_lock_the_member_out() {
    let server = TestServer::start_with(|c| {
        c.login_failures_per_account_address = 3;
        c.login_attempts_per_address = 100;
    })
    .await;
    server.register("target").await;
    // Someone who knows the username guesses from their own address.
    for _ in 0..3 {
        assert_eq!(login_from(&server, "127.0.0.2", "target", "guess guess").await.status, 401);
    }
    // That address is now refused for this account, even with the right password...
    let refused = login_from(&server, "127.0.0.2", "target", "password-target").await;
    assert_eq!((refused.status, http_error_code(&refused.body).as_str()), (429, "rate_limited"), "{}", refused.body);
    let wait: u64 = refused.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=300).contains(&wait), "{wait}");
    assert!(refused.body.contains("try again in"), "{}", refused.body);
    // ...but the member, from their own address, gets in, again and again.
    for _ in 0..5 {
        assert_eq!(login_from(&server, "127.0.0.1", "target", "password-target").await.status, 200);
    }
    // A member's own typos followed by a success leave no mark: the success clears them.
    for round in 0..3 {
        for _ in 0..2 {
            assert_eq!(login_from(&server, "127.0.0.3", "target", "typo typo").await.status, 401);
        }
        let answer = login_from(&server, "127.0.0.3", "target", "password-target").await;
        assert_eq!(answer.status, 200, "round {round}: {}", answer.body);
    }
}

#[tokio::test]
async fn failures_from_many_addresses_slow_an_account_down_but_never_shut_it() {
    let server = TestServer::start_with(|c| {
        c.login_failures_per_account_address = 3;
        c.login_slowdown_ms = 20;
    })
    .await;
    server.register("target").await;
    // A spread-out attack: two guesses from each of five addresses, under every
    // per-address limit; the account collects ten failures.
    for n in 10..15 {
        for _ in 0..2 {
            assert_eq!(login_from(&server, &format!("127.0.0.{n}"), "target", "guess guess").await.status, 401);
        }
    }
    assert_eq!(login_from(&server, "127.0.0.1", "target", "password-target").await.status, 200, "slowed, not refused");
}

#[tokio::test]
async fn each_address_has_a_login_budget_across_accounts() {
    let server = TestServer::start_with(|c| c.login_attempts_per_address = 4).await;
    for name in ["one", "two", "three", "four"] {
        assert_eq!(login_from(&server, "127.0.0.4", name, "guess guess").await.status, 401);
    }
    let refused = login_from(&server, "127.0.0.4", "five", "guess guess").await;
    assert_eq!(refused.status, 429);
    assert!(refused.header("retry-after").is_some());
    assert_eq!(login_from(&server, "127.0.0.5", "five", "guess guess").await.status, 401, "another address");
}

#[tokio::test]
async fn account_routes_take_small_json_bodies_only() {
    let server = TestServer::start().await;
    // Not JSON by its type: refused before it is parsed.
    let plain = http(server.addr, "POST", "/api/v1/login", &[("Content-Type", "text/plain")], None).await;
    assert_eq!(plain.0, 400, "{}", plain.1);
    // A body of megabytes (a password of 1.9 MB, say) is refused unread.
    let huge = json!({"username": "target", "password": "x".repeat(2_000_000)}).to_string();
    let answer = http_from("127.0.0.1", server.addr, "POST", "/api/v1/login", Some(&huge)).await;
    assert_eq!((answer.status, http_error_code(&answer.body).as_str()), (413, "too_large"), "{}", answer.body);
    // Within the body limit, a password over 1,024 bytes is refused before hashing.
    let long = json!({"username": "target", "password": "x".repeat(2_000)}).to_string();
    let answer = http_from("127.0.0.1", server.addr, "POST", "/api/v1/login", Some(&long)).await;
    assert_eq!((answer.status, http_error_code(&answer.body).as_str()), (400, "invalid"), "{}", answer.body);
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

#[tokio::test]
async fn a_login_storm_is_turned_away_at_once_rather_than_queued_without_end() {
    let server = TestServer::start().await;
    // More logins at once than the hashing queue holds (64): the rest are told to try
    // again shortly instead of piling up in memory.
    let storm = (0..120).map(|n| {
        let body = json!({"username": format!("storm{n}"), "password": "guess guess"}).to_string();
        let addr = server.addr;
        tokio::spawn(async move { http_from("127.0.0.1", addr, "POST", "/api/v1/login", Some(&body)).await })
    });
    let mut statuses = std::collections::BTreeMap::new();
    for answer in futures_util::future::join_all(storm).await {
        let answer = answer.unwrap();
        if answer.status == 429 {
            assert!(answer.header("retry-after").is_some(), "{}", answer.body);
        }
        *statuses.entry(answer.status).or_insert(0) += 1;
    }
    assert!(statuses.keys().all(|status| [401, 429].contains(status)), "{statuses:?}");
    assert!(statuses.get(&429).is_some_and(|n| *n > 0), "nothing was turned away: {statuses:?}");
    assert!(statuses.get(&401).is_some_and(|n| *n >= 64), "the queue's worth was served: {statuses:?}");
    let (status, _) = server.post("/api/v1/login", &json!({"username": "storm1", "password": "guess guess"})).await;
    assert_eq!(status, 401, "served again once the storm passed");
}

#[tokio::test]
async fn names_cannot_impersonate_and_common_passwords_are_refused() {
    let server = TestServer::start().await;
    let register = |username: &str, display: &str, password: &str| {
        let body = json!({"username": username, "password": password, "display_name": display});
        let server = &server;
        async move { server.post("/api/v1/register", &body).await }
    };
    assert_eq!(register("ada", "Ada Lovelace", "a gentle password").await.0, 201);
    // Invisible and direction-changing characters: a name that shows as another's.
    for sneaky in ["Ada\u{202E}ecalevoL", "A\u{200B}da", "Ad\u{2066}a", "\u{FEFF}Ada"] {
        assert_http_error(&register("mallory", sneaky, "a gentle password").await, 400, "invalid");
    }
    // Another member's display name or username, in any case, is theirs.
    assert_http_error(&register("mallory", "ADA LOVELACE", "a gentle password").await, 400, "invalid");
    assert_http_error(&register("mallory", "Ada", "a gentle password").await, 400, "invalid");
    // Nor can a new username be someone's display name.
    assert_eq!(register("grace", "Hopper", "a gentle password").await.0, 201);
    assert_http_error(&register("hopper", "Someone", "a gentle password").await, 409, "conflict");
    // Emoji are fine, variation selector and all.
    assert_eq!(register("mallory", "Mal ❤️", "a gentle password").await.0, 201);
    // A password from the list of the most common ones is refused, saying why.
    for common in ["iloveyou", "sunshine", "Football", "password1"] {
        let answer = register("newcomer", "Newcomer", common).await;
        assert_http_error(&answer, 400, "invalid");
        assert!(answer.1.contains("most common"), "{common}: {}", answer.1);
    }
    assert_eq!(register("newcomer", "Newcomer", "correct horse battery").await.0, 201);
}
