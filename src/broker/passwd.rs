//! Mosquitto password file entries, as `mosquitto_passwd` writes them for
//! Mosquitto 2: `user:$7$<iterations>$<salt>$<hash>`, PBKDF2-HMAC-SHA512,
//! base64 — so a bundle needs no Mosquitto tools on the machine that makes it.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha2::Sha512;

const ITERATIONS: u32 = 101;
const SALT_LEN: usize = 12;

/// One password file line (without the newline).
pub fn entry(user: &str, password: &str) -> String {
    let salt: [u8; SALT_LEN] = rand::random();
    entry_with_salt(user, password, &salt, ITERATIONS)
}

fn entry_with_salt(user: &str, password: &str, salt: &[u8], iterations: u32) -> String {
    let mut hash = [0_u8; 64];
    pbkdf2::pbkdf2_hmac::<Sha512>(password.as_bytes(), salt, iterations, &mut hash);
    format!(
        "{user}:$7${iterations}${}${}",
        STANDARD.encode(salt),
        STANDARD.encode(hash)
    )
}

/// Whether `line` (as `mosquitto_passwd` writes it) holds `password`: used
/// to check this module against the real tool.
#[cfg(test)]
pub fn verify(line: &str, password: &str) -> bool {
    let Some((user, rest)) = line.trim().split_once(':') else {
        return false;
    };
    let parts: Vec<&str> = rest.split('$').collect();
    let [_, "7", iterations, salt, _] = parts.as_slice() else {
        return false;
    };
    let (Ok(iterations), Ok(salt)) = (iterations.parse(), STANDARD.decode(salt)) else {
        return false;
    };
    entry_with_salt(user, password, &salt, iterations) == line.trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_have_mosquittos_shape_and_verify() {
        let line = entry("hermes", "s3cret");
        assert!(line.starts_with("hermes:$7$101$"), "{line}");
        assert!(verify(&line, "s3cret"));
        assert!(!verify(&line, "other"));
    }

    #[test]
    fn matches_a_line_written_by_mosquitto_passwd_when_installed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("passwd");
        let made = std::process::Command::new("mosquitto_passwd")
            .arg("-b")
            .arg("-c")
            .arg(&file)
            .args(["hermes", "s3cret"])
            .status();
        if !made.is_ok_and(|s| s.success()) {
            eprintln!("mosquitto_passwd is not installed: checked by the broker setup integration test instead");
            return;
        }
        let line = std::fs::read_to_string(&file).expect("passwd");
        assert!(verify(&line, "s3cret"), "{line}");
    }
}
