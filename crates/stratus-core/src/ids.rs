//! Server-generated ids: a kind prefix and six characters of `[a-z0-9]`, as in the contract's
//! examples (`instance-d4e5f6`).

use rand::Rng;
use stratus_types::ResourceId;

const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// A fresh id such as `instance-k3x9q2`.
pub fn generate(prefix: &str) -> ResourceId {
    let mut rng = rand::rng();
    let suffix: String = (0..6)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    ResourceId::parse(&format!("{prefix}-{suffix}")).expect("generated ids are valid")
}

#[cfg(test)]
mod tests {
    #[test]
    fn generated_ids_are_valid_and_vary() {
        let a = super::generate("instance");
        let b = super::generate("instance");
        assert!(a.as_str().starts_with("instance-"));
        assert_eq!(a.as_str().len(), "instance-".len() + 6);
        assert_ne!(a, b);
    }
}
