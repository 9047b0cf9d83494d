// Passkeys in the browser: the server's options (WebAuthn JSON, binary as base64url) turned into
// what navigator.credentials wants, and the credential it answers turned back into JSON. Written
// out here rather than relying on PublicKeyCredential.parseCreationOptionsFromJSON / toJSON,
// which older Safari and Firefox lack.

/** base64url (no padding) → bytes. */
export function fromB64url(text: string): ArrayBuffer {
  const b64 = text.replace(/-/g, '+').replace(/_/g, '/');
  const padded = b64 + '='.repeat((4 - (b64.length % 4)) % 4);
  const bin = atob(padded);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out.buffer;
}

/** bytes → base64url (no padding). */
export function toB64url(buf: ArrayBuffer | ArrayBufferView): string {
  const bytes = buf instanceof ArrayBuffer ? new Uint8Array(buf) : new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

interface Descriptor {
  type: 'public-key';
  id: string;
}

/** `POST /user/passkeys/options`'s answer. */
export interface CreationOptionsJSON {
  publicKey: {
    challenge: string;
    rp: { id: string; name: string };
    user: { id: string; name: string; displayName: string };
    pubKeyCredParams: Array<{ type: 'public-key'; alg: number }>;
    timeout: number;
    attestation: AttestationConveyancePreference;
    excludeCredentials: Descriptor[];
    authenticatorSelection: AuthenticatorSelectionCriteria;
  };
}

/** `POST /auth/passkey/options`'s (and the second step's) answer. */
export interface RequestOptionsJSON {
  publicKey: {
    challenge: string;
    rpId: string;
    timeout: number;
    userVerification: UserVerificationRequirement;
    allowCredentials: Descriptor[];
  };
}

/** Whether this browser can use passkeys at all. */
export function passkeysSupported(): boolean {
  return typeof window !== 'undefined' && typeof window.PublicKeyCredential === 'function' && !!navigator.credentials;
}

/** The options for `navigator.credentials.create()`. */
export function creationOptions(json: CreationOptionsJSON): CredentialCreationOptions {
  const pk = json.publicKey;
  return {
    publicKey: {
      challenge: fromB64url(pk.challenge),
      rp: pk.rp,
      user: { id: fromB64url(pk.user.id), name: pk.user.name, displayName: pk.user.displayName },
      pubKeyCredParams: pk.pubKeyCredParams,
      timeout: pk.timeout,
      attestation: pk.attestation,
      excludeCredentials: pk.excludeCredentials.map((c) => ({ type: c.type, id: fromB64url(c.id) })),
      authenticatorSelection: pk.authenticatorSelection,
    },
  };
}

/** The options for `navigator.credentials.get()`. */
export function requestOptions(json: RequestOptionsJSON): CredentialRequestOptions {
  const pk = json.publicKey;
  return {
    publicKey: {
      challenge: fromB64url(pk.challenge),
      rpId: pk.rpId,
      timeout: pk.timeout,
      userVerification: pk.userVerification,
      allowCredentials: pk.allowCredentials.map((c) => ({ type: c.type, id: fromB64url(c.id) })),
    },
  };
}

/** A created credential as the server reads it. */
export function registrationJSON(cred: PublicKeyCredential) {
  const r = cred.response as AuthenticatorAttestationResponse;
  return {
    id: cred.id,
    rawId: toB64url(cred.rawId),
    type: cred.type,
    response: { clientDataJSON: toB64url(r.clientDataJSON), attestationObject: toB64url(r.attestationObject) },
  };
}

/** An assertion as the server reads it. */
export function assertionJSON(cred: PublicKeyCredential) {
  const r = cred.response as AuthenticatorAssertionResponse;
  return {
    id: cred.id,
    rawId: toB64url(cred.rawId),
    type: cred.type,
    response: {
      clientDataJSON: toB64url(r.clientDataJSON),
      authenticatorData: toB64url(r.authenticatorData),
      signature: toB64url(r.signature),
      userHandle: r.userHandle ? toB64url(r.userHandle) : null,
    },
  };
}

/** Runs `create()` with the server's options and answers the credential's JSON. */
export async function createPasskey(options: CreationOptionsJSON) {
  const cred = (await navigator.credentials.create(creationOptions(options))) as PublicKeyCredential | null;
  if (!cred) throw new DOMException('No passkey was created', 'NotAllowedError');
  return registrationJSON(cred);
}

/** Runs `get()` with the server's options and answers the assertion's JSON. */
export async function getPasskey(options: RequestOptionsJSON) {
  const cred = (await navigator.credentials.get(requestOptions(options))) as PublicKeyCredential | null;
  if (!cred) throw new DOMException('No passkey was chosen', 'NotAllowedError');
  return assertionJSON(cred);
}

/** Whether an error is the person cancelling the browser's dialog (not worth a red message). */
export function cancelled(err: unknown): boolean {
  return err instanceof DOMException && (err.name === 'NotAllowedError' || err.name === 'AbortError');
}
