// PKCS#10 certificate signing requests (RFC 2986), signed by any Signer: a
// key on a PKCS#11 token or a software key. Used for the gateway's MQTT TLS
// client certificate; the private key never leaves the signer.
//
//   CertificationRequest ::= SEQUENCE {
//     certificationRequestInfo  SEQUENCE { version INTEGER 0, subject Name,
//                                          subjectPKInfo SubjectPublicKeyInfo,
//                                          attributes [0] IMPLICIT SET OF Attribute },
//     signatureAlgorithm AlgorithmIdentifier, signature BIT STRING }
//
// Signature algorithms, chosen by the signer's COSE alg (so the signer's own
// sign() produces exactly the signature X.509 expects):
//   ES256 / ES256K  ecdsa-with-SHA256 (1.2.840.10045.4.3.2, no parameters);
//                   the signer's raw r‖s is re-encoded as DER ECDSA-Sig-Value
//   EdDSA Ed25519   id-Ed25519 (1.3.101.112, no parameters; RFC 8410)
//   PS256           id-RSASSA-PSS (1.2.840.113549.1.1.10) with SHA-256,
//                   MGF1-SHA-256, salt 32 (RFC 4055), matching COSE PS256
// The SubjectPublicKeyInfo is node:crypto's SPKI export of the signer's
// public COSE_Key (id-ecPublicKey + named curve, id-Ed25519, rsaEncryption).
//
// Requested extensions (PKCS#9 extensionRequest): subjectAltName when DNS
// names, IP addresses or URIs are given; keyUsage digitalSignature (critical)
// and extKeyUsage clientAuth unless disabled. The CA decides what it grants.
//
// Subjects: RFC 4514 text ("CN=gw-17,O=Acme Logistics,C=DE"; the LAST RDN
// written is the first in the DER sequence, as RFC 4514 prescribes) or the
// OpenSSL form ("/C=DE/O=Acme Logistics/CN=gw-17", in sequence order).
// Multi-valued RDNs use "+". Escapes: RFC 4514 backslash escapes (\, \+ \\ …
// and \XX hex pairs); in the OpenSSL form "\/" too.
import { isIP } from 'node:net';
import type { Signer } from '../signer.js';
import { IscmError } from '../../protocol/errors.js';
import { concatBytes } from '../../protocol/bytes.js';
import { ALG, algName } from '../../protocol/cose/algorithms.js';
import { coseKeyToKeyObject, KTY } from '../../protocol/cose/key.js';
import {
  bitString,
  contextTag,
  ecdsaRawToDer,
  ia5String,
  integer,
  isPrintable,
  nullValue,
  octetString,
  oid,
  printableString,
  sequence,
  setOf,
  tlv,
  utf8String,
} from './der.js';

export const OID = {
  ecdsaWithSHA256: '1.2.840.10045.4.3.2',
  Ed25519: '1.3.101.112',
  rsassaPss: '1.2.840.113549.1.1.10',
  sha256: '2.16.840.1.101.3.4.2.1',
  mgf1: '1.2.840.113549.1.1.8',
  extensionRequest: '1.2.840.113549.1.9.14',
  subjectAltName: '2.5.29.17',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  clientAuth: '1.3.6.1.5.5.7.3.2',
} as const;

interface AttrType {
  oid: string;
  /** String type for the value. */
  kind: 'utf8' | 'printable' | 'ia5';
  maxLength?: number;
}

const ATTRS: Record<string, AttrType> = {
  CN: { oid: '2.5.4.3', kind: 'utf8', maxLength: 64 },
  C: { oid: '2.5.4.6', kind: 'printable', maxLength: 2 },
  L: { oid: '2.5.4.7', kind: 'utf8', maxLength: 128 },
  ST: { oid: '2.5.4.8', kind: 'utf8', maxLength: 128 },
  STREET: { oid: '2.5.4.9', kind: 'utf8', maxLength: 128 },
  O: { oid: '2.5.4.10', kind: 'utf8', maxLength: 64 },
  OU: { oid: '2.5.4.11', kind: 'utf8', maxLength: 64 },
  SERIALNUMBER: { oid: '2.5.4.5', kind: 'printable', maxLength: 64 },
  DC: { oid: '0.9.2342.19200300.100.1.25', kind: 'ia5', maxLength: 63 },
  UID: { oid: '0.9.2342.19200300.100.1.1', kind: 'utf8', maxLength: 256 },
  EMAILADDRESS: { oid: '1.2.840.113549.1.9.1', kind: 'ia5', maxLength: 255 },
};
const ALIASES: Record<string, string> = { E: 'EMAILADDRESS', EMAIL: 'EMAILADDRESS', S: 'ST' };

/** One attribute of a relative distinguished name. */
export interface NameAttribute {
  /** Short name as written (CN, O, …), upper case. */
  type: string;
  value: string;
}
/** A distinguished name in DER order (first RDN = most significant, e.g. C). */
export type DistinguishedName = NameAttribute[][];

function usage(message: string): IscmError {
  return new IscmError('USAGE', message, 'subject');
}

function unescape4514(raw: string, extra: string): string {
  // Decodes RFC 4514 escapes: \<special> and \XX hex pairs (UTF-8).
  const bytes: number[] = [];
  const enc = new TextEncoder();
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i];
    if (c !== '\\') {
      bytes.push(...enc.encode(c));
      continue;
    }
    const n = raw[i + 1];
    if (n === undefined) throw usage('the subject ends with a lone backslash');
    if (/[0-9a-fA-F]/.test(n) && /[0-9a-fA-F]/.test(raw[i + 2] ?? '')) {
      bytes.push(parseInt(raw.slice(i + 1, i + 3), 16));
      i += 2;
    } else if (`,+"\\<>;= #${extra}`.includes(n)) {
      bytes.push(n.charCodeAt(0));
      i += 1;
    } else throw usage(`bad escape "\\${n}" in the subject`);
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.from(bytes));
  } catch {
    throw usage('the subject has an escaped byte sequence that is not UTF-8');
  }
}

/** Splits on `sep` outside backslash escapes. */
function splitUnescaped(s: string, sep: string): string[] {
  const out: string[] = [];
  let cur = '';
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '\\' && i + 1 < s.length) {
      cur += s[i] + s[i + 1];
      i++;
    } else if (s[i] === sep) {
      out.push(cur);
      cur = '';
    } else cur += s[i];
  }
  out.push(cur);
  return out;
}

function parseAttr(text: string, extra: string): NameAttribute {
  const eq = text.indexOf('=');
  if (eq <= 0) throw usage(`"${text}" is not TYPE=value (e.g. CN=gateway-17)`);
  const rawType = text.slice(0, eq).trim().toUpperCase();
  const type = ALIASES[rawType] ?? rawType;
  const info = ATTRS[type];
  if (!info) throw usage(`unsupported subject attribute "${text.slice(0, eq).trim()}" (use ${Object.keys(ATTRS).join(', ')})`);
  const rawValue = text.slice(eq + 1);
  if (rawValue.startsWith('#')) throw usage(`hex-encoded (#…) subject values are not supported (${type})`);
  const value = unescape4514(rawValue.trim(), extra);
  if (value.length === 0) throw usage(`${type} is empty`);
  if (type === 'C' && !/^[A-Z]{2}$/.test(value)) throw usage(`C must be a two-letter ISO 3166 country code, got ${JSON.stringify(value)}`);
  if (info.maxLength !== undefined && [...value].length > info.maxLength) throw usage(`${type} is longer than ${info.maxLength} characters`);
  if (info.kind === 'printable' && !isPrintable(value)) throw usage(`${type}=${JSON.stringify(value)} has characters a PrintableString cannot hold`);
  if (info.kind === 'ia5' && !/^[\x20-\x7e]*$/.test(value)) throw usage(`${type} must be printable ASCII`);
  return { type, value };
}

/**
 * Parses a subject: RFC 4514 ("CN=x,O=y,C=DE") or OpenSSL style ("/C=DE/O=y/CN=x").
 * Returns the RDNs in DER order. Throws IscmError('USAGE').
 */
export function parseSubject(text: string): DistinguishedName {
  if (typeof text !== 'string' || text.trim() === '') throw usage('the subject is empty (e.g. --subject "CN=gateway-17,O=Acme")');
  if (text.length > 4096) throw usage('the subject is longer than 4096 characters');
  const s = text.trim();
  let rdns: string[];
  let extra = '';
  if (s.startsWith('/')) {
    extra = '/';
    rdns = splitUnescaped(s.slice(1), '/');
    if (rdns.length && rdns[rdns.length - 1] === '') rdns.pop();
  } else {
    rdns = splitUnescaped(s, ',').reverse();
  }
  const dn = rdns.map((r) => {
    if (r.trim() === '') throw usage(`empty RDN in subject ${JSON.stringify(text)}`);
    const attrs = splitUnescaped(r, '+').map((a) => parseAttr(a, extra));
    return attrs;
  });
  if (dn.length === 0) throw usage('the subject is empty');
  return dn;
}

function encodeValue(a: NameAttribute): Uint8Array {
  const info = ATTRS[a.type];
  switch (info.kind) {
    case 'printable':
      return printableString(a.value);
    case 'ia5':
      return ia5String(a.value);
    default:
      return utf8String(a.value);
  }
}

/** DER Name (RDNSequence). */
export function encodeName(dn: DistinguishedName): Uint8Array {
  return sequence(...dn.map((rdn) => setOf(...rdn.map((a) => sequence(oid(ATTRS[a.type].oid), encodeValue(a))))));
}

/** RFC 4514 text of a name (most significant RDN last), for display. */
export function formatName(dn: DistinguishedName): string {
  const esc = (v: string) => v.replace(/([,+"\\<>;=])/g, '\\$1').replace(/^([ #])/, '\\$1').replace(/ $/, '\\ ');
  return [...dn]
    .reverse()
    .map((rdn) => rdn.map((a) => `${a.type === 'EMAILADDRESS' ? 'emailAddress' : a.type === 'SERIALNUMBER' ? 'serialNumber' : a.type}=${esc(a.value)}`).join('+'))
    .join(',');
}

// ------------------------------------------------------------------ algorithms

function signatureAlgorithm(alg: number): Uint8Array {
  switch (alg) {
    case ALG.ES256:
    case ALG.ES256K:
      return sequence(oid(OID.ecdsaWithSHA256));
    case ALG.EdDSA:
      return sequence(oid(OID.Ed25519));
    case ALG.PS256: {
      const sha256 = sequence(oid(OID.sha256), nullValue());
      return sequence(
        oid(OID.rsassaPss),
        sequence(contextTag(0, sha256, true), contextTag(1, sequence(oid(OID.mgf1), sha256), true), contextTag(2, integer(32), true)),
      );
    }
    default:
      throw new IscmError('SIGNER_ERROR', `a CSR cannot be signed with ${algName(alg)} (supported: ES256, ES256K, EdDSA Ed25519, PS256)`);
  }
}

// ------------------------------------------------------------------ extensions

export interface CsrOptions {
  /** Subject DN: RFC 4514 text, OpenSSL "/C=…/CN=…" text, or parsed RDNs. */
  subject: string | DistinguishedName;
  /** subjectAltName dNSName entries. */
  dns?: string[];
  /** subjectAltName iPAddress entries (IPv4 or IPv6 text). */
  ip?: string[];
  /** subjectAltName uniformResourceIdentifier entries. */
  uri?: string[];
  /** Request keyUsage digitalSignature and extKeyUsage clientAuth (default true: an mTLS client certificate). */
  clientAuth?: boolean;
}

function ipBytes(text: string): Uint8Array {
  const v = isIP(text);
  if (v === 4) return Uint8Array.from(text.split('.').map(Number));
  if (v !== 6) throw new IscmError('USAGE', `${JSON.stringify(text)} is not an IP address`, 'ip');
  // Expand "::" and an optional embedded IPv4 tail.
  let t = text;
  const tail: number[] = [];
  const m = /(\d+\.\d+\.\d+\.\d+)$/.exec(t);
  if (m) {
    const b = m[1].split('.').map(Number);
    tail.push((b[0] << 8) | b[1], (b[2] << 8) | b[3]);
    t = t.slice(0, -m[1].length) + '0:0';
  }
  const [head, rest] = t.split('::');
  const h = head ? head.split(':') : [];
  const r = rest !== undefined && rest !== '' ? rest.split(':') : [];
  const groups = rest === undefined ? h : [...h, ...Array(8 - h.length - r.length).fill('0'), ...r];
  const words = groups.map((g) => parseInt(g, 16));
  if (tail.length) words.splice(6, 2, ...tail);
  const out = new Uint8Array(16);
  words.forEach((w, i) => {
    out[2 * i] = w >> 8;
    out[2 * i + 1] = w & 0xff;
  });
  return out;
}

function extension(id: string, critical: boolean, value: Uint8Array): Uint8Array {
  return sequence(oid(id), ...(critical ? [Uint8Array.of(0x01, 0x01, 0xff)] : []), octetString(value));
}

function extensions(opts: CsrOptions): Uint8Array[] {
  const exts: Uint8Array[] = [];
  const names: Uint8Array[] = [];
  for (const d of opts.dns ?? []) {
    if (!/^(\*\.)?([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(d) || d.length > 253)
      throw new IscmError('USAGE', `${JSON.stringify(d)} is not a DNS name`, 'dns');
    names.push(contextTag(2, new TextEncoder().encode(d), false));
  }
  for (const ip of opts.ip ?? []) names.push(contextTag(7, ipBytes(ip), false));
  for (const u of opts.uri ?? []) {
    if (!/^[a-zA-Z][a-zA-Z0-9+.-]*:[\x21-\x7e]+$/.test(u)) throw new IscmError('USAGE', `${JSON.stringify(u)} is not an absolute URI`, 'uri');
    names.push(contextTag(6, new TextEncoder().encode(u), false));
  }
  if (names.length) exts.push(extension(OID.subjectAltName, false, sequence(...names)));
  if (opts.clientAuth ?? true) {
    // keyUsage: BIT STRING with digitalSignature (bit 0) set: 03 02 07 80.
    exts.push(extension(OID.keyUsage, true, Uint8Array.of(0x03, 0x02, 0x07, 0x80)));
    exts.push(extension(OID.extKeyUsage, false, sequence(oid(OID.clientAuth))));
  }
  return exts;
}

// ------------------------------------------------------------------ CSR

export interface Csr {
  /** CertificationRequest DER. */
  der: Uint8Array;
  /** PEM "CERTIFICATE REQUEST". */
  pem: string;
  /** The subject as RFC 4514 text. */
  subject: string;
}

/** DER SubjectPublicKeyInfo of the signer's public key. */
export function subjectPublicKeyInfo(signer: Signer): Uint8Array {
  const der = coseKeyToKeyObject(signer.publicKey).export({ type: 'spki', format: 'der' });
  return new Uint8Array(der.buffer, der.byteOffset, der.length);
}

/**
 * Builds and signs a PKCS#10 request with `signer` (its sign() is called once,
 * over the DER CertificationRequestInfo). Throws USAGE for bad subject/SAN
 * input, SIGNER_ERROR when the signer fails or its alg has no CSR mapping.
 */
export async function createCsr(signer: Signer, opts: CsrOptions): Promise<Csr> {
  const dn = typeof opts.subject === 'string' ? parseSubject(opts.subject) : opts.subject;
  const sigAlg = signatureAlgorithm(signer.alg);
  if (signer.alg === ALG.EdDSA && (signer.publicKey.kty !== KTY.OKP || signer.publicKey.crv !== 6))
    throw new IscmError('SIGNER_ERROR', 'only Ed25519 EdDSA keys can sign a CSR here');
  const exts = extensions(opts);
  const attributes = exts.length ? [sequence(oid(OID.extensionRequest), setOf(sequence(...exts)))] : [];
  const info = sequence(integer(0), encodeName(dn), subjectPublicKeyInfo(signer), tlv(0xa0, attributes.length ? concatBytes(...attributes) : new Uint8Array(0)));
  const raw = await signer.sign(info);
  const sig = signer.alg === ALG.ES256 || signer.alg === ALG.ES256K ? ecdsaRawToDer(raw) : raw;
  const der = sequence(info, sigAlg, bitString(sig));
  const b64 = Buffer.from(der).toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return { der, pem: `-----BEGIN CERTIFICATE REQUEST-----\n${b64}\n-----END CERTIFICATE REQUEST-----\n`, subject: formatName(dn) };
}

