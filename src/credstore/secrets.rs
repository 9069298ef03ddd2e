//! Generation, hashing and sealing of secret material. Bearer-style secrets are
//! stored only as SHA-256 hashes; EdgeGrid client secrets are an HMAC key the
//! verifier must hold, so they are sealed (ChaCha20-Poly1305) under a master key
//! that lives in its own owner-only file, never in the database.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::digest::{SHA256, digest};
use ring::rand::{SecureRandom, SystemRandom};

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("sealed data is corrupt or was sealed under another key")]
    Open,
}

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    // The kernel CSPRNG only fails on a broken system; refusing to run is the only safe answer.
    SystemRandom::new()
        .fill(&mut out)
        .expect("system random number generator");
    out
}

/// `n` characters from `alphabet`, uniformly (rejection sampling).
pub fn random_string(alphabet: &[u8], n: usize) -> String {
    let limit = 256 - (256 % alphabet.len());
    let mut out = String::with_capacity(n);
    while out.len() < n {
        for byte in random_bytes::<64>() {
            if (byte as usize) < limit && out.len() < n {
                out.push(alphabet[byte as usize % alphabet.len()] as char);
            }
        }
    }
    out
}

pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    SystemRandom::new()
        .fill(&mut buf)
        .expect("system random number generator");
    URL_SAFE_NO_PAD.encode(buf)
}

pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    SystemRandom::new()
        .fill(&mut buf)
        .expect("system random number generator");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// A uniformly random number in `[0, 1)`.
pub fn random_unit() -> f64 {
    u64::from_le_bytes(random_bytes::<8>()) as f64 / (u64::MAX as f64 + 1.0)
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, data).as_ref());
    out
}

/// The lookup key under which a secret's hash is stored; domain-separated per API
/// so the same string can never authenticate against two APIs.
pub fn secret_hash(api: &str, secret: &str) -> [u8; 32] {
    sha256(format!("credstore/{api}\0{secret}").as_bytes())
}

pub struct Sealer {
    key: LessSafeKey,
}

impl Sealer {
    pub fn new(key: &[u8; 32]) -> Self {
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, key).expect("32-byte ChaCha20-Poly1305 key");
        Self {
            key: LessSafeKey::new(unbound),
        }
    }

    /// base64(nonce || ciphertext || tag).
    pub fn seal(&self, plaintext: &[u8]) -> String {
        let nonce_bytes = random_bytes::<NONCE_LEN>();
        let mut buf = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce_bytes), Aad::empty(), &mut buf)
            .expect("sealing within ChaCha20-Poly1305 length limits");
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&buf);
        STANDARD.encode(out)
    }

    pub fn open(&self, sealed: &str) -> Result<Vec<u8>, SealError> {
        let raw = STANDARD.decode(sealed).map_err(|_| SealError::Open)?;
        if raw.len() < NONCE_LEN {
            return Err(SealError::Open);
        }
        let (nonce, body) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Open)?;
        let mut body = body.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::empty(), &mut body)
            .map_err(|_| SealError::Open)?;
        Ok(plain.to_vec())
    }
}
