// RFC 7512 PKCS#11 URIs: which module, token and key a signer uses.
//
//   pkcs11:token=iscm-gw;object=batch-key;type=private?module-path=/usr/lib/softhsm/libsofthsm2.so
//
// Path attributes (";"-separated): token, manufacturer, serial, model,
// library-manufacturer, library-description, library-version, slot-manufacturer,
// slot-description, slot-id, object, id, type. Query attributes ("&"-separated):
// module-path, module-name, pin-source.
//
// Policies (each violation is a Pkcs11DriverError reason URI_INVALID, code USAGE):
// - Values are percent-decoded; text attributes must be UTF-8; `id` is raw
//   bytes (every byte may be percent-encoded). Characters outside the RFC's
//   pk11-pchar / pk11-qchar sets must be percent-encoded.
// - An attribute may appear once (RFC 7512 §2.3 forbids repeating path
//   attributes; we also refuse repeated query attributes).
// - Unknown attributes are refused, vendor ones (x-…) included: an attribute
//   we do not understand cannot be matched, and ignoring it could select a
//   token or key the writer did not mean (e.g. a typo "tokne=").
// - `pin-value` is refused: PINs never sit in URIs, configs or arguments
//   (ARCHITECTURE §2 inv. 4). `pin-source` names a file (a path or file: URI)
//   whose content is the PIN.
// - `type` must be private, public, cert, secret-key or data; a signer needs
//   a private key, so it only accepts `private` (or no type).
import { fileURLToPath } from 'node:url';
import { Pkcs11DriverError } from './errors.js';

export type Pkcs11ObjectType = 'private' | 'public' | 'cert' | 'secret-key' | 'data';

export interface Pkcs11Uri {
  token?: string;
  manufacturer?: string;
  serial?: string;
  model?: string;
  libraryManufacturer?: string;
  libraryDescription?: string;
  libraryVersion?: string;
  slotManufacturer?: string;
  slotDescription?: string;
  slotId?: number;
  object?: string;
  id?: Uint8Array;
  type?: Pkcs11ObjectType;
  /** Query: absolute path of the module to load. */
  modulePath?: string;
  /** Query: module name without directory and suffix (e.g. "softhsm2"), looked up in the usual directories. */
  moduleName?: string;
  /** Query: file holding the PIN (path; a file: URI is converted). */
  pinSource?: string;
}

const PATH_ATTRS: Record<string, keyof Pkcs11Uri> = {
  token: 'token',
  manufacturer: 'manufacturer',
  serial: 'serial',
  model: 'model',
  'library-manufacturer': 'libraryManufacturer',
  'library-description': 'libraryDescription',
  'library-version': 'libraryVersion',
  'slot-manufacturer': 'slotManufacturer',
  'slot-description': 'slotDescription',
  'slot-id': 'slotId',
  object: 'object',
  id: 'id',
  type: 'type',
};
const QUERY_ATTRS: Record<string, keyof Pkcs11Uri> = {
  'module-path': 'modulePath',
  'module-name': 'moduleName',
  'pin-source': 'pinSource',
};
const TYPES: readonly string[] = ['private', 'public', 'cert', 'secret-key', 'data'];

// RFC 7512 §2.3 character sets (unreserved + the reserved characters allowed unencoded).
const UNRESERVED = 'A-Za-z0-9\\-._~';
const RES_AVAIL = ":\\[\\]@!$'()*+,=";
const PCHAR = new RegExp(`^(?:[${UNRESERVED}${RES_AVAIL}&]|%[0-9A-Fa-f]{2})*$`);
const QCHAR = new RegExp(`^(?:[${UNRESERVED}${RES_AVAIL}/?|]|%[0-9A-Fa-f]{2})*$`);
const ATTR_NAME = /^[A-Za-z0-9_-]+$/;

export function uriError(message: string): Pkcs11DriverError {
  return new Pkcs11DriverError('URI_INVALID', message, { code: 'USAGE', field: 'uri' });
}

function pctBytes(v: string): Uint8Array {
  const out: number[] = [];
  for (let i = 0; i < v.length; i++) {
    if (v[i] === '%') {
      out.push(parseInt(v.slice(i + 1, i + 3), 16));
      i += 2;
    } else out.push(v.charCodeAt(i));
  }
  return Uint8Array.from(out);
}

function pctText(v: string, name: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(pctBytes(v));
  } catch {
    throw uriError(`pkcs11 URI attribute ${name} is not valid UTF-8 after percent-decoding`);
  }
}

/** Parses an RFC 7512 URI. Throws Pkcs11DriverError('URI_INVALID', code USAGE). */
export function parsePkcs11Uri(text: string): Pkcs11Uri {
  if (typeof text !== 'string') throw uriError('a pkcs11 URI must be text');
  if (text.length > 4096) throw uriError('the pkcs11 URI is longer than 4096 characters');
  if (!/^pkcs11:/i.test(text)) throw uriError(`not a pkcs11 URI (must start with "pkcs11:"): ${JSON.stringify(text.slice(0, 40))}`);
  const body = text.slice('pkcs11:'.length);
  const q = body.indexOf('?');
  const path = q < 0 ? body : body.slice(0, q);
  const query = q < 0 ? '' : body.slice(q + 1);
  const uri: Pkcs11Uri = {};
  const seen = new Set<string>();

  const take = (part: string, sep: string, table: Record<string, keyof Pkcs11Uri>, chars: RegExp, where: string) => {
    if (part === '') return;
    for (const item of part.split(sep)) {
      if (item === '') throw uriError(`empty ${where} attribute in pkcs11 URI (stray "${sep}")`);
      const eq = item.indexOf('=');
      if (eq <= 0) throw uriError(`pkcs11 URI ${where} attribute ${JSON.stringify(item.slice(0, 40))} is not name=value`);
      const name = item.slice(0, eq).toLowerCase();
      const raw = item.slice(eq + 1);
      if (!ATTR_NAME.test(name)) throw uriError(`bad pkcs11 URI attribute name ${JSON.stringify(item.slice(0, eq))}`);
      if (name === 'pin-value')
        throw uriError('pin-value is not accepted in a pkcs11 URI: PINs never sit in URIs or configs; set ISCM_PKCS11_PIN or use pin-source=FILE / --pin-file');
      const key = table[name];
      if (!key) {
        const other = (table === PATH_ATTRS ? QUERY_ATTRS : PATH_ATTRS)[name];
        if (other) throw uriError(`pkcs11 URI attribute ${name} belongs in the ${table === PATH_ATTRS ? 'query (after "?")' : 'path (before "?")'}`);
        throw uriError(`unknown pkcs11 URI ${where} attribute ${JSON.stringify(name)} (known: ${Object.keys(table).join(', ')})`);
      }
      if (seen.has(name)) throw uriError(`pkcs11 URI attribute ${name} appears twice`);
      seen.add(name);
      if (!chars.test(raw)) throw uriError(`pkcs11 URI attribute ${name} has characters that must be percent-encoded (or a bad %XX escape)`);
      switch (key) {
        case 'id':
          uri.id = pctBytes(raw);
          break;
        case 'slotId': {
          const v = pctText(raw, name);
          if (!/^(0|[1-9][0-9]{0,15})$/.test(v) || !Number.isSafeInteger(Number(v))) throw uriError(`slot-id must be a decimal number, got ${JSON.stringify(v)}`);
          uri.slotId = Number(v);
          break;
        }
        case 'type': {
          const v = pctText(raw, name);
          if (!TYPES.includes(v)) throw uriError(`type must be one of ${TYPES.join(', ')}, got ${JSON.stringify(v)}`);
          uri.type = v as Pkcs11ObjectType;
          break;
        }
        case 'libraryVersion': {
          const v = pctText(raw, name);
          if (!/^[0-9]{1,3}(\.[0-9]{1,3})?$/.test(v)) throw uriError(`library-version must be M or M.N, got ${JSON.stringify(v)}`);
          uri.libraryVersion = v;
          break;
        }
        case 'pinSource': {
          const v = pctText(raw, name);
          if (v === '') throw uriError('pin-source is empty');
          if (/^file:/i.test(v)) {
            try {
              uri.pinSource = fileURLToPath(v);
            } catch {
              throw uriError(`pin-source ${JSON.stringify(v)} is not a usable file: URI`);
            }
          } else if (/^[a-z][a-z0-9+.-]*:/i.test(v)) throw uriError(`pin-source must be a file path or a file: URI, got scheme ${v.split(':')[0]}`);
          else uri.pinSource = v;
          break;
        }
        case 'modulePath': {
          const v = pctText(raw, name);
          if (!v.startsWith('/')) throw uriError(`module-path must be an absolute path, got ${JSON.stringify(v)}`);
          uri.modulePath = v;
          break;
        }
        case 'moduleName': {
          const v = pctText(raw, name);
          if (!/^[A-Za-z0-9._+-]+$/.test(v) || v.startsWith('.')) throw uriError(`module-name must be a bare library name (no directory), got ${JSON.stringify(v)}`);
          uri.moduleName = v;
          break;
        }
        default:
          (uri as Record<string, unknown>)[key] = pctText(raw, name);
      }
    }
  };
  take(path, ';', PATH_ATTRS, PCHAR, 'path');
  take(query, '&', QUERY_ATTRS, QCHAR, 'query');
  return uri;
}

function pctEncode(bytes: Uint8Array, allowed: RegExp): string {
  let out = '';
  for (const b of bytes) {
    const c = String.fromCharCode(b);
    out += b < 0x80 && allowed.test(c) ? c : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

// Characters written unencoded: unreserved plus a few harmless ones; "&" ";" "=" "?" "/" "%" always encoded.
const SAFE_PATH = /^[A-Za-z0-9\-._~:@!$'()*+,]$/;
const SAFE_QUERY = /^[A-Za-z0-9\-._~:@!$'()*+,/]$/;

/** Formats a URI in a canonical attribute order (RFC 7512 §2.3 order of the attribute table). */
export function formatPkcs11Uri(uri: Pkcs11Uri): string {
  const enc = new TextEncoder();
  const path: string[] = [];
  for (const [name, key] of Object.entries(PATH_ATTRS)) {
    const v = uri[key];
    if (v === undefined) continue;
    const bytes = v instanceof Uint8Array ? v : enc.encode(String(v));
    path.push(`${name}=${key === 'id' ? [...bytes].map((b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join('') : pctEncode(bytes, SAFE_PATH)}`);
  }
  const query: string[] = [];
  for (const [name, key] of Object.entries(QUERY_ATTRS)) {
    const v = uri[key];
    if (v === undefined) continue;
    query.push(`${name}=${pctEncode(enc.encode(String(v)), SAFE_QUERY)}`);
  }
  return `pkcs11:${path.join(';')}${query.length ? `?${query.join('&')}` : ''}`;
}
