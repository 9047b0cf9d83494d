//! A software passkey authenticator: it answers the options Skein sends for
//! `navigator.credentials.create()` and `.get()` exactly as a browser and a platform
//! authenticator would (WebAuthn Level 2 JSON forms), with a real key made in the test: P-256
//! (ES256) by default, or any signer for RS256. Its CBOR is written here, independently of
//! the server's decoder.
//!
//! Knobs let tests misbehave on purpose: another origin, a flipped signature bit, a counter
//! that goes back, user verification off.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// A signer for a key the test made elsewhere (RS256): message in, signature out.
pub type Signer = Box<dyn Fn(&[u8]) -> Vec<u8> + Send + Sync>;

enum Key {
    P256(EcdsaKeyPair),
    Other { cose: Vec<u8>, sign: Signer },
}

/// One credential on a software authenticator.
pub struct SoftAuthenticator {
    key: Key,
    rng: SystemRandom,
    /// The credential id (random, 16 bytes).
    pub credential_id: Vec<u8>,
    /// The user handle the credential was created for.
    pub user_handle: Option<Vec<u8>>,
    /// The counter the next assertion carries (then incremented).
    pub sign_count: u32,
    /// The origin the "browser" puts in `clientDataJSON`.
    pub origin: String,
    /// Whether the "user" is verified (PIN, biometrics).
    pub user_verified: bool,
    /// Flip a bit of the next signatures.
    pub forge: bool,
    /// Sign for this RP ID instead of the one in the options.
    pub rp_id_override: Option<String>,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(text)
        .expect("base64url from the server")
}

/// A CBOR head (major type, argument), shortest form.
fn head(out: &mut Vec<u8>, major: u8, n: u64) {
    let m = major << 5;
    if n < 24 {
        out.push(m | n as u8);
    } else if n <= 0xff {
        out.extend([m | 24, n as u8]);
    } else if n <= 0xffff {
        out.push(m | 25);
        out.extend((n as u16).to_be_bytes());
    } else {
        out.push(m | 26);
        out.extend((n as u32).to_be_bytes());
    }
}

fn cbor_int(out: &mut Vec<u8>, i: i64) {
    if i >= 0 {
        head(out, 0, i as u64);
    } else {
        head(out, 1, (-1 - i) as u64);
    }
}

fn cbor_bytes(out: &mut Vec<u8>, b: &[u8]) {
    head(out, 2, b.len() as u64);
    out.extend(b);
}

fn cbor_text(out: &mut Vec<u8>, t: &str) {
    head(out, 3, t.len() as u64);
    out.extend(t.as_bytes());
}

/// The COSE_Key of a P-256 public point (`04 ‖ x ‖ y`): kty 2, alg -7, crv 1, x, y.
pub fn cose_p256(point: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    head(&mut out, 5, 5);
    cbor_int(&mut out, 1);
    cbor_int(&mut out, 2);
    cbor_int(&mut out, 3);
    cbor_int(&mut out, -7);
    cbor_int(&mut out, -1);
    cbor_int(&mut out, 1);
    cbor_int(&mut out, -2);
    cbor_bytes(&mut out, &point[1..33]);
    cbor_int(&mut out, -3);
    cbor_bytes(&mut out, &point[33..65]);
    out
}

/// The COSE_Key of an RSA public key: kty 3, alg -257, n, e.
pub fn cose_rsa(n: &[u8], e: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    head(&mut out, 5, 4);
    cbor_int(&mut out, 1);
    cbor_int(&mut out, 3);
    cbor_int(&mut out, 3);
    cbor_int(&mut out, -257);
    cbor_int(&mut out, -1);
    cbor_bytes(&mut out, n);
    cbor_int(&mut out, -2);
    cbor_bytes(&mut out, e);
    out
}

impl SoftAuthenticator {
    /// A new P-256 credential for pages at `origin`.
    pub fn new(origin: &str) -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .expect("a P-256 key");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .expect("the key parses");
        Self::with_key(origin, Key::P256(pair), rng)
    }

    /// A credential whose public key is `cose` and whose signatures `sign` makes (RS256).
    pub fn with_signer(origin: &str, cose: Vec<u8>, sign: Signer) -> Self {
        Self::with_key(origin, Key::Other { cose, sign }, SystemRandom::new())
    }

    fn with_key(origin: &str, key: Key, rng: SystemRandom) -> Self {
        let mut credential_id = vec![0u8; 16];
        ring::rand::SecureRandom::fill(&rng, &mut credential_id).expect("random bytes");
        SoftAuthenticator {
            key,
            rng,
            credential_id,
            user_handle: None,
            sign_count: 1,
            origin: origin.to_string(),
            user_verified: true,
            forge: false,
            rp_id_override: None,
        }
    }

    fn cose_key(&self) -> Vec<u8> {
        match &self.key {
            Key::P256(pair) => cose_p256(pair.public_key().as_ref()),
            Key::Other { cose, .. } => cose.clone(),
        }
    }

    fn sign(&self, message: &[u8]) -> Vec<u8> {
        let mut signature = match &self.key {
            Key::P256(pair) => pair
                .sign(&self.rng, message)
                .expect("signing")
                .as_ref()
                .to_vec(),
            Key::Other { sign, .. } => sign(message),
        };
        if self.forge
            && let Some(last) = signature.last_mut()
        {
            *last ^= 1;
        }
        signature
    }

    fn client_data(&self, kind: &str, challenge: &str) -> Vec<u8> {
        json!({ "type": kind, "challenge": challenge, "origin": self.origin, "crossOrigin": false })
            .to_string()
            .into_bytes()
    }

    fn auth_data(&self, rp_id: &str, attested: bool, count: u32) -> Vec<u8> {
        let rp_id = self.rp_id_override.as_deref().unwrap_or(rp_id);
        let mut out = Sha256::digest(rp_id.as_bytes()).to_vec();
        let mut flags = 0x01; // UP
        if self.user_verified {
            flags |= 0x04;
        }
        if attested {
            flags |= 0x40;
        }
        out.push(flags);
        out.extend(count.to_be_bytes());
        if attested {
            out.extend([0u8; 16]); // AAGUID: none
            out.extend((self.credential_id.len() as u16).to_be_bytes());
            out.extend(&self.credential_id);
            out.extend(self.cose_key());
        }
        out
    }

    /// Answers `POST /user/passkeys/options` as `navigator.credentials.create()` would:
    /// `{id, rawId, type, response: {clientDataJSON, attestationObject}}`, attestation "none".
    pub fn create(&mut self, options: &Value) -> Value {
        let pk = &options["publicKey"];
        let challenge = pk["challenge"].as_str().expect("a challenge");
        let rp_id = pk["rp"]["id"].as_str().expect("an RP ID");
        self.user_handle = pk["user"]["id"].as_str().map(unb64);
        let client_data = self.client_data("webauthn.create", challenge);
        let auth_data = self.auth_data(rp_id, true, 0);
        let mut attestation = Vec::new();
        head(&mut attestation, 5, 3);
        cbor_text(&mut attestation, "fmt");
        cbor_text(&mut attestation, "none");
        cbor_text(&mut attestation, "attStmt");
        head(&mut attestation, 5, 0);
        cbor_text(&mut attestation, "authData");
        cbor_bytes(&mut attestation, &auth_data);
        json!({
            "id": b64(&self.credential_id),
            "rawId": b64(&self.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64(&client_data),
                "attestationObject": b64(&attestation),
            },
        })
    }

    /// Answers sign-in options as `navigator.credentials.get()` would: signs
    /// `authenticatorData ‖ SHA-256(clientDataJSON)` and moves the counter on.
    pub fn get(&mut self, options: &Value) -> Value {
        let pk = &options["publicKey"];
        let challenge = pk["challenge"].as_str().expect("a challenge");
        let rp_id = pk["rpId"].as_str().expect("an RP ID");
        let client_data = self.client_data("webauthn.get", challenge);
        let auth_data = self.auth_data(rp_id, false, self.sign_count);
        self.sign_count += 1;
        let mut message = auth_data.clone();
        message.extend_from_slice(&Sha256::digest(&client_data));
        let signature = self.sign(&message);
        json!({
            "id": b64(&self.credential_id),
            "rawId": b64(&self.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64(&client_data),
                "authenticatorData": b64(&auth_data),
                "signature": b64(&signature),
                "userHandle": self.user_handle.as_deref().map(b64),
            },
        })
    }
}
