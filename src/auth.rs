//! Accounts: password hashing, login tokens and name rules.
//!
//! Passwords are hashed with argon2id at OWASP's parameters (19 MiB, 2 passes, 1 lane)
//! on a few dedicated threads at the lowest scheduling priority (`SCHED_IDLE`). A login
//! storm then uses only the CPU that chat leaves over: a semaphore alone bounds how many
//! hashes run, but not who gets the cores. Tokens are 256 random bits, shown to the
//! client once and kept only as a SHA-256 hash.

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use sha2::{Digest, Sha256};
use std::sync::{mpsc, Arc, Mutex};
use tokio::sync::{oneshot, Semaphore};

/// Hashes and verifies passwords off the async threads.
#[derive(Clone)]
pub struct Passwords {
    /// Bounds the hashes queued or running, so a storm waits here, not in memory.
    permits: Arc<Semaphore>,
    /// Work for the hashing threads.
    jobs: mpsc::Sender<Job>,
    /// A real hash of a random password, verified against when the user does not
    /// exist, so an unknown user costs the same time as a wrong password.
    dummy_hash: Arc<str>,
}

type Job = Box<dyn FnOnce() + Send>;

/// Hashes queued or running at once (about three seconds of work for one thread);
/// beyond that a login or registration is turned away at once, not queued in memory.
const MAX_QUEUED_HASHES: usize = 64;

/// Why hashing could not run.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// The queue is full: a login storm. Try again in a moment.
    #[error("too many passwords are being checked at once")]
    Busy,
    /// Hashing itself failed.
    #[error("password hashing failed: {0}")]
    Failed(String),
}

impl Passwords {
    /// `threads` hashing threads (at least one), at the lowest priority.
    pub fn new(threads: usize) -> Passwords {
        let mut random = [0u8; 32];
        OsRng.fill_bytes(&mut random);
        let dummy_hash = hash_now(&hex(&random)).expect("hashing a fixed-size password works");
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..threads.max(1) {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new().name(format!("alongside-hash-{n}")).spawn(move || {
                lower_this_threads_priority();
                // The lock is held only to take one job; the threads end when the last
                // `Passwords` (and so the sender) is dropped.
                while let Ok(job) = { queue.lock().expect("hash queue").recv() } {
                    job();
                }
            });
            if let Err(err) = spawned {
                tracing::error!(error = %err, "cannot start a password hashing thread");
            }
        }
        Passwords { permits: Arc::new(Semaphore::new(MAX_QUEUED_HASHES)), jobs, dummy_hash: dummy_hash.into() }
    }

    /// Runs `work` on a hashing thread.
    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, HashError> {
        let _permit = self.permits.try_acquire().map_err(|_| HashError::Busy)?;
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = reply.send(work());
        });
        self.jobs.send(job).map_err(|_| HashError::Failed("the hashing threads have stopped".into()))?;
        answer.await.map_err(|_| HashError::Failed("a hashing thread failed".into()))
    }

    /// An argon2id PHC string for `password`.
    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        self.run(move || hash_now(&password)).await?
    }

    /// Whether `password` matches `hash`; with `hash` `None` it burns the same time and
    /// says no.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, HashError> {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy_hash.to_string());
        let matches = self
            .run(move || {
                let parsed = PasswordHash::new(&hash).map_err(|e| HashError::Failed(e.to_string()))?;
                Ok::<bool, HashError>(Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
            })
            .await??;
        Ok(known && matches)
    }
}

/// Gives the calling thread the lowest CPU priority Linux has (`SCHED_IDLE`: it runs
/// only on a CPU nothing else wants), falling back to nice 19. Best effort: without it
/// hashing still works, it just competes with chat.
fn lower_this_threads_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: these calls take plain integers and a pointer to a local struct that
    // outlives them; they touch no other memory of ours.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::pid_t;
        let param = libc::sched_param { sched_priority: 0 };
        if libc::sched_setscheduler(tid, libc::SCHED_IDLE, &param) != 0
            && libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19) != 0
        {
            tracing::debug!("cannot lower the hashing thread's priority");
        }
    }
}

fn hash_now(password: &str) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut OsRng);
    // `Argon2::default()` is argon2id v19 with m=19456 KiB, t=2, p=1: OWASP's advice.
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| HashError::Failed(e.to_string()))
}

/// A new login token: 256 random bits as 64 hex characters.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    hex(&bytes)
}

/// The form a token is stored and looked up in.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Letters and digits an invite code is made of: no 0/o, 1/l/i to misread.
const INVITE_ALPHABET: &[u8; 31] = b"abcdefghjkmnpqrstuvwxyz23456789";

/// A new invite code: twelve random letters and digits (about 59 bits) in three
/// groups of four, easy to read out
/// (`k7pw-3mxa-9qte`). Registration limits and use counts bound guessing.
pub fn new_invite_code() -> String {
    let mut bytes = [0u8; 12];
    OsRng.fill_bytes(&mut bytes);
    let letters: Vec<char> =
        bytes.iter().map(|byte| INVITE_ALPHABET[usize::from(*byte) % INVITE_ALPHABET.len()] as char).collect();
    letters.chunks(4).map(|group| group.iter().collect::<String>()).collect::<Vec<_>>().join("-")
}

/// The form an invite code is stored and looked up in: case, spaces and dashes as
/// typed do not matter.
pub fn invite_hash(code: &str) -> [u8; 32] {
    let folded: String =
        code.chars().filter(|c| !c.is_whitespace() && *c != '-').flat_map(char::to_lowercase).collect();
    Sha256::digest(folded.as_bytes()).into()
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(DIGITS[usize::from(byte >> 4)] as char);
        out.push(DIGITS[usize::from(byte & 15)] as char);
    }
    out
}

/// Lower-cases and checks a username: 3–32 of `a-z 0-9 _ . -`.
pub fn normalise_username(raw: &str) -> Result<String, &'static str> {
    let name = raw.to_lowercase();
    let length_ok = (3..=32).contains(&name.chars().count());
    let chars_ok = name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-'));
    if length_ok && chars_ok {
        Ok(name)
    } else {
        Err("Usernames are 3 to 32 characters from a-z, 0-9, '_', '.' and '-'.")
    }
}

/// The prefix of erased accounts' usernames, which nobody may register.
pub const ERASED_PREFIX: &str = "deleted-";

/// Refuses the usernames kept for erased accounts (`deleted-<n>`), so nobody can pass
/// as one or take the name an erasure will give.
pub fn check_not_reserved(name: &str) -> Result<(), &'static str> {
    if name.starts_with(ERASED_PREFIX) {
        return Err("Usernames starting with “deleted-” are kept for erased accounts; please choose another.");
    }
    Ok(())
}

/// Checks a display name: 1–64 characters, no control characters, not blank.
pub fn check_display_name(name: &str) -> Result<(), &'static str> {
    let n = name.chars().count();
    if !(1..=64).contains(&n) || name.chars().any(char::is_control) || name.trim().is_empty() {
        return Err("Display names are 1 to 64 characters with no control characters.");
    }
    if name.chars().any(is_format_character) {
        return Err("Display names cannot contain invisible or direction-changing characters.");
    }
    Ok(())
}

/// The form a display name is compared in, against usernames and other display
/// names: case folded, so "Ada" and "ADA" and the username `ada` are one name.
pub fn fold_name(name: &str) -> String {
    name.trim().to_lowercase()
}

/// Unicode format characters (general category Cf) and other invisible fillers: unseen,
/// or changing the direction of the text around them. In a name they serve only to look
/// like someone else (a bidi override turns "evil" into "live" on screen, a zero-width
/// joiner makes a second "ada"). Variation selectors stay allowed: emoji need them.
fn is_format_character(c: char) -> bool {
    matches!(c,
        '\u{00AD}'
        | '\u{034F}'
        | '\u{061C}'
        | '\u{115F}'..='\u{1160}'
        | '\u{17B4}'..='\u{17B5}'
        | '\u{180B}'..='\u{180F}'
        | '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}'
        | '\u{3164}'
        | '\u{FEFF}'
        | '\u{FFA0}'
        | '\u{FFF0}'..='\u{FFFB}'
        | '\u{E0000}'..='\u{E0FFF}'
    )
}

/// The most common passwords of 8 characters or more, refused at registration.
static COMMON_PASSWORDS: std::sync::LazyLock<std::collections::HashSet<&'static str>> =
    std::sync::LazyLock::new(|| {
        include_str!("../data/common-passwords.txt").lines().filter(|line| !line.starts_with('#')).collect()
    });

/// Refuses a password that is among the most common ones (as typed, or in lower case).
pub fn check_password_not_common(password: &str) -> Result<(), &'static str> {
    if COMMON_PASSWORDS.contains(password) || COMMON_PASSWORDS.contains(password.to_lowercase().as_str()) {
        Err("That password is one of the 10,000 most common ones, which attackers try first; please choose another.")
    } else {
        Ok(())
    }
}

/// Checks a password's length: 8–1024 bytes.
pub fn check_password(password: &str) -> Result<(), &'static str> {
    if (8..=1024).contains(&password.len()) {
        Ok(())
    } else {
        Err("Passwords are 8 to 1024 bytes long.")
    }
}

/// Only the upper bound, for logins: checked before anything else is done with it.
pub fn check_password_length(password: &str) -> Result<(), &'static str> {
    if password.len() <= 1024 {
        Ok(())
    } else {
        Err("Passwords are at most 1024 bytes long.")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_lower_cased_and_checked() {
        assert_eq!(normalise_username("Ada.L-1_x").unwrap(), "ada.l-1_x");
        for bad in ["ab", "a b c", "ada!", "x".repeat(33).as_str(), "ädä"] {
            assert!(normalise_username(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn display_names_and_passwords_have_bounds() {
        assert!(check_display_name("Ada Lovelace").is_ok());
        assert!(check_display_name("").is_err());
        assert!(check_display_name("   ").is_err());
        assert!(check_display_name("bell\u{7}").is_err());
        assert!(check_display_name(&"x".repeat(65)).is_err());
        assert!(check_password("1234567").is_err());
        assert!(check_password("12345678").is_ok());
        assert!(check_password(&"x".repeat(1025)).is_err());
    }

    #[test]
    fn tokens_are_256_bit_and_stored_hashed() {
        let token = new_token();
        assert_eq!(token.len(), 64);
        assert_ne!(token, new_token());
        assert_eq!(token_hash(&token), token_hash(&token));
        assert_ne!(token_hash(&token).to_vec(), token.as_bytes()[..32].to_vec());
    }

    #[tokio::test]
    async fn passwords_verify_only_themselves() {
        let passwords = Passwords::new(2);
        let hash = passwords.hash("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(passwords.verify("correct horse".into(), Some(hash.clone())).await.unwrap());
        assert!(!passwords.verify("wrong horse".into(), Some(hash)).await.unwrap());
        assert!(!passwords.verify("correct horse".into(), None).await.unwrap());
    }
}
