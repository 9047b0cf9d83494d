//! Passkeys (WebAuthn Level 2): the checks of the registration and authentication ceremonies,
//! as pure functions over the bytes a browser sends. The HTTP layer (`http/passkeys.rs`) keeps
//! the challenges (server-side, single use, expiring) and the stored keys.
//!
//! What is checked, following "Registering a New Credential" (§7.1) and "Verifying an
//! Authentication Assertion" (§7.2): `clientDataJSON`'s `type`, `challenge` and `origin`
//! (the one origin of `oauth.public_url`, never a cross-origin frame); the authenticator
//! data's RP ID hash (SHA-256 of the RP ID, the public URL's host) and the user-present flag;
//! attestation format `none` only (we ask for none: no authenticator model is trusted or
//! recorded); the credential's COSE key (ES256 on P-256, or RS256); the assertion's signature
//! over `authenticatorData ‖ SHA-256(clientDataJSON)`; and the signature counter, which must
//! grow whenever either side is non-zero (a counter that goes back is a cloned key).
//!
//! Signatures are verified with `ring`, already in the build for TLS and JWTs (no OpenSSL and
//! no new native code); CBOR is read by the small strict decoder in [`cbor`].

pub mod cbor;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// COSE algorithm -7: ECDSA with SHA-256 on P-256.
pub const ES256: i64 = -7;
/// COSE algorithm -257: RSASSA-PKCS1-v1_5 with SHA-256.
pub const RS256: i64 = -257;

/// Authenticator data flag: the user was present (touched the key).
const FLAG_UP: u8 = 0x01;
/// The user was verified (PIN, biometrics).
const FLAG_UV: u8 = 0x04;
/// Attested credential data follows the counter.
const FLAG_AT: u8 = 0x40;
/// Extensions follow.
const FLAG_ED: u8 = 0x80;

/// Who the credentials are for: the RP ID (a host) and the one origin pages come from.
#[derive(Debug, Clone)]
pub struct RelyingParty {
    /// `skein.example.com`.
    pub id: String,
    /// `https://skein.example.com` (with a port when not the default).
    pub origin: String,
    /// Shown by the authenticator.
    pub name: String,
}

impl RelyingParty {
    /// The relying party of the public URL `url` (`https://host[:port][/...]`).
    pub fn from_public_url(url: &str, name: &str) -> Result<Self, String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("public URL {url:?}: {e}"))?;
        let host = parsed
            .host_str()
            .ok_or_else(|| format!("public URL {url:?} has no host"))?
            .to_string();
        let origin = parsed.origin().ascii_serialization();
        Ok(RelyingParty {
            id: host,
            origin,
            name: name.to_string(),
        })
    }
}

/// Why a ceremony failed: for the log, and the API's `details.reason`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PasskeyError(pub &'static str);

/// `clientDataJSON`, the fields we check.
#[derive(Debug, Deserialize)]
struct ClientData {
    #[serde(rename = "type")]
    kind: String,
    challenge: String,
    origin: String,
    #[serde(default, rename = "crossOrigin")]
    cross_origin: bool,
}

/// A checked `clientDataJSON`: the challenge it answers (base64url, as sent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedClientData {
    /// The challenge, to look up and use once.
    pub challenge: String,
}

/// Parses `clientDataJSON` and checks its ceremony type and origin.
pub fn check_client_data(
    json: &[u8],
    ceremony: &str,
    rp: &RelyingParty,
) -> Result<CheckedClientData, PasskeyError> {
    let data: ClientData =
        serde_json::from_slice(json).map_err(|_| PasskeyError("clientDataJSON is not JSON"))?;
    if data.kind != ceremony {
        return Err(PasskeyError("clientDataJSON is for another ceremony"));
    }
    if data.origin != rp.origin {
        return Err(PasskeyError("the page's origin is not this server's"));
    }
    if data.cross_origin {
        return Err(PasskeyError("cross-origin frames may not use passkeys"));
    }
    Ok(CheckedClientData {
        challenge: data.challenge,
    })
}

/// A credential's public key, from its COSE form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// P-256, uncompressed SEC1 point (`04 ‖ x ‖ y`).
    Es256(Vec<u8>),
    /// RSA modulus and exponent, big-endian.
    Rs256 {
        /// Modulus.
        n: Vec<u8>,
        /// Public exponent.
        e: Vec<u8>,
    },
}

impl PublicKey {
    /// Reads a COSE_Key (RFC 9053): EC2 with crv P-256 and alg ES256, or RSA with RS256.
    pub fn from_cose(key: &cbor::Value) -> Result<PublicKey, PasskeyError> {
        let kty = key.int_key(1).and_then(cbor::Value::as_int);
        let alg = key.int_key(3).and_then(cbor::Value::as_int);
        match (kty, alg) {
            (Some(2), Some(ES256)) => {
                if key.int_key(-1).and_then(cbor::Value::as_int) != Some(1) {
                    return Err(PasskeyError("only the P-256 curve is accepted"));
                }
                let x = key.int_key(-2).and_then(cbor::Value::as_bytes);
                let y = key.int_key(-3).and_then(cbor::Value::as_bytes);
                match (x, y) {
                    (Some(x), Some(y)) if x.len() == 32 && y.len() == 32 => {
                        let mut point = Vec::with_capacity(65);
                        point.push(4);
                        point.extend_from_slice(x);
                        point.extend_from_slice(y);
                        Ok(PublicKey::Es256(point))
                    }
                    _ => Err(PasskeyError("the P-256 key's coordinates are malformed")),
                }
            }
            (Some(3), Some(RS256)) => {
                let n = key.int_key(-1).and_then(cbor::Value::as_bytes);
                let e = key.int_key(-2).and_then(cbor::Value::as_bytes);
                match (n, e) {
                    (Some(n), Some(e)) if n.len() >= 256 && !e.is_empty() && e.len() <= 8 => {
                        Ok(PublicKey::Rs256 {
                            n: n.to_vec(),
                            e: e.to_vec(),
                        })
                    }
                    _ => Err(PasskeyError(
                        "the RSA key is malformed or shorter than 2048 bits",
                    )),
                }
            }
            _ => Err(PasskeyError(
                "only ES256 (P-256) and RS256 passkeys are accepted",
            )),
        }
    }

    /// The COSE algorithm.
    pub fn algorithm(&self) -> i64 {
        match self {
            PublicKey::Es256(_) => ES256,
            PublicKey::Rs256 { .. } => RS256,
        }
    }

    /// Whether `signature` signs `message` under this key.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        use ring::signature as sig;
        match self {
            PublicKey::Es256(point) => {
                sig::UnparsedPublicKey::new(&sig::ECDSA_P256_SHA256_ASN1, point)
                    .verify(message, signature)
                    .is_ok()
            }
            PublicKey::Rs256 { n, e } => sig::RsaPublicKeyComponents { n, e }
                .verify(&sig::RSA_PKCS1_2048_8192_SHA256, message, signature)
                .is_ok(),
        }
    }
}

/// Authenticator data, parsed.
#[derive(Debug, Clone)]
pub struct AuthenticatorData {
    /// SHA-256 of the RP ID the authenticator signed for.
    pub rp_id_hash: [u8; 32],
    /// The flags byte.
    pub flags: u8,
    /// The signature counter (0: the authenticator keeps none).
    pub sign_count: u32,
    /// At registration: the new credential's id and public key (COSE, as sent).
    pub attested: Option<(Vec<u8>, Vec<u8>)>,
}

impl AuthenticatorData {
    /// Parses the bytes: 32 RP ID hash, 1 flags, 4 counter, then (AT) 16 AAGUID, 2 length,
    /// the credential id and its COSE key, then (ED) extensions, and nothing else.
    pub fn parse(bytes: &[u8]) -> Result<AuthenticatorData, PasskeyError> {
        let short = || PasskeyError("authenticator data is too short");
        if bytes.len() < 37 {
            return Err(short());
        }
        let mut rp_id_hash = [0u8; 32];
        rp_id_hash.copy_from_slice(&bytes[..32]);
        let flags = bytes[32];
        let sign_count = u32::from_be_bytes([bytes[33], bytes[34], bytes[35], bytes[36]]);
        let mut rest = &bytes[37..];
        let mut attested = None;
        if flags & FLAG_AT != 0 {
            if rest.len() < 18 {
                return Err(short());
            }
            let id_len = usize::from(u16::from_be_bytes([rest[16], rest[17]]));
            rest = &rest[18..];
            if id_len == 0 || id_len > 1023 || rest.len() < id_len {
                return Err(PasskeyError("the credential id is malformed"));
            }
            let id = rest[..id_len].to_vec();
            rest = &rest[id_len..];
            let (_, used) = cbor::decode(rest)
                .map_err(|_| PasskeyError("the credential's public key is not CBOR"))?;
            attested = Some((id, rest[..used].to_vec()));
            rest = &rest[used..];
        }
        if flags & FLAG_ED != 0 {
            let (_, used) =
                cbor::decode(rest).map_err(|_| PasskeyError("the extensions are not CBOR"))?;
            rest = &rest[used..];
        }
        if !rest.is_empty() {
            return Err(PasskeyError("bytes after the authenticator data"));
        }
        Ok(AuthenticatorData {
            rp_id_hash,
            flags,
            sign_count,
            attested,
        })
    }

    /// The RP ID hash is this server's and the user was present.
    fn check(&self, rp: &RelyingParty) -> Result<(), PasskeyError> {
        let expected: [u8; 32] = Sha256::digest(rp.id.as_bytes()).into();
        if self.rp_id_hash != expected {
            return Err(PasskeyError("the passkey is for another site"));
        }
        if self.flags & FLAG_UP == 0 {
            return Err(PasskeyError("the user was not present"));
        }
        Ok(())
    }

    /// Whether the authenticator verified the user (PIN, biometrics).
    pub fn user_verified(&self) -> bool {
        self.flags & FLAG_UV != 0
    }
}

/// A new credential, checked and ready to store.
#[derive(Debug, Clone)]
pub struct NewCredential {
    /// The credential id.
    pub id: Vec<u8>,
    /// The COSE key as the authenticator sent it.
    pub cose_key: Vec<u8>,
    /// Its key.
    pub public_key: PublicKey,
    /// The counter at registration.
    pub sign_count: u32,
    /// Whether the user was verified.
    pub user_verified: bool,
}

/// Checks an attestation object (after its client data was checked and its challenge
/// claimed): format `none`, this RP, user present, a credential whose id is `raw_id`.
pub fn check_registration(
    attestation_object: &[u8],
    raw_id: &[u8],
    rp: &RelyingParty,
) -> Result<NewCredential, PasskeyError> {
    let object = cbor::decode_all(attestation_object)
        .map_err(|_| PasskeyError("the attestation object is not CBOR"))?;
    match object.text_key("fmt") {
        Some(cbor::Value::Text(fmt)) if fmt == "none" => {}
        Some(cbor::Value::Text(_)) => {
            return Err(PasskeyError(
                "only attestation \"none\" is accepted (this server asks for none)",
            ));
        }
        _ => return Err(PasskeyError("the attestation object has no format")),
    }
    if object.text_key("attStmt") != Some(&cbor::Value::Map(Vec::new())) {
        return Err(PasskeyError("attestation \"none\" carries no statement"));
    }
    let auth_data = object
        .text_key("authData")
        .and_then(cbor::Value::as_bytes)
        .ok_or(PasskeyError(
            "the attestation object has no authenticator data",
        ))?;
    let data = AuthenticatorData::parse(auth_data)?;
    data.check(rp)?;
    let (id, cose_key) = data
        .attested
        .clone()
        .ok_or(PasskeyError("no credential was created"))?;
    if id != raw_id {
        return Err(PasskeyError("the credential id does not match"));
    }
    let key = cbor::decode_all(&cose_key)
        .map_err(|_| PasskeyError("the credential's public key is not CBOR"))?;
    let public_key = PublicKey::from_cose(&key)?;
    Ok(NewCredential {
        id,
        cose_key,
        public_key,
        sign_count: data.sign_count,
        user_verified: data.user_verified(),
    })
}

/// A checked assertion.
#[derive(Debug, Clone, Copy)]
pub struct Assertion {
    /// The counter to store.
    pub sign_count: u32,
    /// Whether the user was verified.
    pub user_verified: bool,
}

/// Checks an assertion by the stored credential (after its client data was checked and its
/// challenge claimed): this RP, user present, the signature, and a counter that moved on.
pub fn check_assertion(
    authenticator_data: &[u8],
    client_data_json: &[u8],
    signature: &[u8],
    cose_key: &[u8],
    stored_count: u32,
    rp: &RelyingParty,
) -> Result<Assertion, PasskeyError> {
    let data = AuthenticatorData::parse(authenticator_data)?;
    data.check(rp)?;
    let key = cbor::decode_all(cose_key)
        .map_err(|_| PasskeyError("the stored key is not CBOR"))
        .and_then(|k| PublicKey::from_cose(&k))?;
    let mut message = authenticator_data.to_vec();
    message.extend_from_slice(&Sha256::digest(client_data_json));
    if !key.verify(&message, signature) {
        return Err(PasskeyError("the signature is wrong"));
    }
    if (data.sign_count != 0 || stored_count != 0) && data.sign_count <= stored_count {
        return Err(PasskeyError(
            "the signature counter went back: the passkey may have been cloned",
        ));
    }
    Ok(Assertion {
        sign_count: data.sign_count,
        user_verified: data.user_verified(),
    })
}

/// Base64url without padding, as WebAuthn's JSON forms carry binary.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes base64url (padding tolerated).
pub fn unb64(text: &str) -> Result<Vec<u8>, PasskeyError> {
    URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| PasskeyError("a field is not base64url"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cbor::Value;
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};

    fn rp() -> RelyingParty {
        RelyingParty::from_public_url("https://skein.example.com/", "Skein").unwrap()
    }

    fn cose(point: &[u8]) -> Vec<u8> {
        cbor::encode(&Value::Map(vec![
            (Value::Int(1), Value::Int(2)),
            (Value::Int(3), Value::Int(ES256)),
            (Value::Int(-1), Value::Int(1)),
            (Value::Int(-2), Value::Bytes(point[1..33].to_vec())),
            (Value::Int(-3), Value::Bytes(point[33..].to_vec())),
        ]))
    }

    fn auth_data(rp_id: &str, flags: u8, count: u32, attested: Option<(&[u8], &[u8])>) -> Vec<u8> {
        let mut out = Sha256::digest(rp_id.as_bytes()).to_vec();
        out.push(flags);
        out.extend(count.to_be_bytes());
        if let Some((id, key)) = attested {
            out.extend([0u8; 16]);
            out.extend((id.len() as u16).to_be_bytes());
            out.extend(id);
            out.extend(key);
        }
        out
    }

    #[test]
    fn the_relying_party_comes_from_the_public_url() {
        let local = RelyingParty::from_public_url("http://localhost:3000/app", "S").unwrap();
        assert_eq!(local.id, "localhost");
        assert_eq!(local.origin, "http://localhost:3000");
        assert_eq!(rp().origin, "https://skein.example.com");
    }

    #[test]
    fn a_registration_then_assertions_check_every_part() {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let key = cose(pair.public_key().as_ref());
        let id = b"credential-1".to_vec();
        let att = |fmt: &str, data: Vec<u8>| {
            cbor::encode(&Value::Map(vec![
                (Value::Text("fmt".into()), Value::Text(fmt.into())),
                (Value::Text("attStmt".into()), Value::Map(vec![])),
                (Value::Text("authData".into()), Value::Bytes(data)),
            ]))
        };
        let good = auth_data(
            rp().id.as_str(),
            FLAG_UP | FLAG_UV | FLAG_AT,
            0,
            Some((&id, &key)),
        );
        let made = check_registration(&att("none", good.clone()), &id, &rp()).unwrap();
        assert_eq!(made.public_key.algorithm(), ES256);
        assert!(made.user_verified);
        assert_eq!(made.cose_key, key);
        // Another site's, not present, another format, another id: refused.
        let other = auth_data("evil.example", FLAG_UP | FLAG_AT, 0, Some((&id, &key)));
        assert!(check_registration(&att("none", other), &id, &rp()).is_err());
        let absent = auth_data(rp().id.as_str(), FLAG_AT, 0, Some((&id, &key)));
        assert!(check_registration(&att("none", absent), &id, &rp()).is_err());
        assert!(check_registration(&att("packed", good.clone()), &id, &rp()).is_err());
        assert!(check_registration(&att("none", good), b"other", &rp()).is_err());

        let client =
            br#"{"type":"webauthn.get","challenge":"abc","origin":"https://skein.example.com"}"#;
        let sign = |data: &[u8]| {
            let mut message = data.to_vec();
            message.extend_from_slice(&Sha256::digest(client));
            pair.sign(&rng, &message).unwrap().as_ref().to_vec()
        };
        let data = auth_data(rp().id.as_str(), FLAG_UP, 5, None);
        let ok = check_assertion(&data, client, &sign(&data), &key, 4, &rp()).unwrap();
        assert_eq!(ok.sign_count, 5);
        // The counter must move on; a flipped bit breaks the signature.
        assert!(check_assertion(&data, client, &sign(&data), &key, 5, &rp()).is_err());
        let mut forged = sign(&data);
        let last = forged.len() - 1;
        forged[last] ^= 1;
        assert!(check_assertion(&data, client, &forged, &key, 4, &rp()).is_err());
        // Both counters at zero: an authenticator without one.
        let zero = auth_data(rp().id.as_str(), FLAG_UP, 0, None);
        assert!(check_assertion(&zero, client, &sign(&zero), &key, 0, &rp()).is_ok());

        assert_eq!(
            check_client_data(client, "webauthn.get", &rp())
                .unwrap()
                .challenge,
            "abc"
        );
        assert!(check_client_data(client, "webauthn.create", &rp()).is_err());
        let elsewhere =
            br#"{"type":"webauthn.get","challenge":"abc","origin":"https://evil.example"}"#;
        assert!(check_client_data(elsewhere, "webauthn.get", &rp()).is_err());
        let framed = br#"{"type":"webauthn.get","challenge":"abc","origin":"https://skein.example.com","crossOrigin":true}"#;
        assert!(check_client_data(framed, "webauthn.get", &rp()).is_err());
    }

    #[test]
    fn authenticator_data_refuses_truncation_and_trailing_bytes() {
        let key = cose(&[4u8; 65]);
        let data = auth_data("x", FLAG_UP | FLAG_AT, 1, Some((b"id", &key)));
        assert!(AuthenticatorData::parse(&data).is_ok());
        for cut in 0..data.len() {
            assert!(AuthenticatorData::parse(&data[..cut]).is_err(), "cut {cut}");
        }
        let mut long = data.clone();
        long.push(0);
        assert!(AuthenticatorData::parse(&long).is_err());
    }
}
