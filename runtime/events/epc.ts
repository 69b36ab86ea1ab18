// GS1 identifiers as the gateway meets them: EPC URIs in the config and from
// RFID readers (pure identity, tag and class URIs), EPC binary (96-bit tags,
// read as hex), GS1 barcodes (element strings), and GS1 Digital Link URIs.
//
// Two jobs:
//  - validate and normalise what goes into events (config check, RFID reads);
//  - canonicalise identifiers for the GS1 event hash ID (hash.ts): every GS1
//    key becomes the canonical Digital Link URI `https://id.gs1.org/…`, with
//    the rules the CBV 2.0 reference implementation applies (README of the
//    EPCIS vectors). Written from the GS1 Tag Data Standard and the Digital
//    Link standard; the hash vectors are the test.

/** GS1 mod-10 check digit (GS1 General Specifications §7.9.1), for GTIN, GLN, SSCC, GRAI, GSRN, GDTI, GSIN, GCN. */
export function checkDigit(digits: string): number {
  let sum = 0;
  // Weights 3, 1, 3, … from the rightmost digit.
  for (let i = digits.length - 1, w = 3; i >= 0; i--, w = 4 - w) sum += (digits.charCodeAt(i) - 48) * w;
  return (10 - (sum % 10)) % 10;
}

/** True when the last digit of `key` is its GS1 check digit. */
export function validCheckDigit(key: string): boolean {
  return /^\d{2,}$/.test(key) && checkDigit(key.slice(0, -1)) === key.charCodeAt(key.length - 1) - 48;
}

// Characters allowed in EPC URI serials and similar fields (TDS Table I.3.1-1):
// the GS1 AI encodable character set 82, with the URI-reserved ones %-escaped.
const CH = String.raw`(?:%2[125-9A-Fa-f]|%3[0-9A-Fa-f]|%4[1-9A-Fa-f]|%5[0-9AaFf]|%6[1-9A-Fa-f]|%7[0-9Aa]|[!')(*+,.0-9:;=A-Za-z_-])`;
// CPI component parts use a narrower set (TDS: digits, upper case, #, -, /).
const CPI_CH = String.raw`(?:%2[3dfDF]|%3[0-9]|%4[1-9A-Fa-f]|%5[0-9Aa]|[0-9A-Z-])`;

/** Digital Link percent-encoding of the characters GS1 DL requires escaped (the EPC URI forms escape the rest already). */
function dlEncode(s: string): string {
  return s.replace(/[!()*+,:]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** `cp.ref` with the two digit groups adding up to `total` (company prefix 6..12 digits). */
function split(cp: string, ref: string, total: number): boolean {
  return cp.length >= 6 && cp.length <= 12 && cp.length + ref.length === total;
}

const gtinOf = (cp: string, item: string) => {
  const raw = item.slice(0, 1) + cp + item.slice(1);
  return raw + checkDigit(raw);
};
const keyOf = (digits: string) => digits + checkDigit(digits);

/** A parsed EPC URI (TDS §6): scheme and its Digital Link form. */
export interface Epc {
  /** e.g. "sgtin", "sscc", "sgln", "grai", "giai", "lgtin" … */
  scheme: string;
  /** "id" (one instance), "class" (a lot or class), "idpat" (a pattern over instances). */
  level: 'id' | 'class' | 'idpat';
  /** The canonical GS1 Digital Link URI (https://id.gs1.org/…). */
  dl: string;
}

type EpcRule = { re: RegExp; scheme: string; level: Epc['level']; dl: (m: RegExpExecArray) => string | null };

const ID = 'urn:epc:id:';
const EPC_RULES: EpcRule[] = [
  {
    scheme: 'sgtin', level: 'id', re: new RegExp(String.raw`^${ID}sgtin:(\d+)\.(\d+)\.(${CH}{1,20})$`),
    dl: (m) => (split(m[1], m[2], 13) ? `https://id.gs1.org/01/${gtinOf(m[1], m[2])}/21/${dlEncode(m[3])}` : null),
  },
  {
    scheme: 'sscc', level: 'id', re: new RegExp(String.raw`^${ID}sscc:(\d+)\.(\d+)$`),
    dl: (m) => (split(m[1], m[2], 17) ? `https://id.gs1.org/00/${keyOf(m[2].slice(0, 1) + m[1] + m[2].slice(1))}` : null),
  },
  {
    scheme: 'sgln', level: 'id', re: new RegExp(String.raw`^${ID}sgln:(\d+)\.(\d*)\.(${CH}{1,20})$`),
    dl: (m) => {
      if (!split(m[1], m[2], 12)) return null;
      const gln = `https://id.gs1.org/414/${keyOf(m[1] + m[2])}`;
      return m[3] === '0' ? gln : `${gln}/254/${dlEncode(m[3])}`;
    },
  },
  {
    scheme: 'grai', level: 'id', re: new RegExp(String.raw`^${ID}grai:(\d+)\.(\d*)\.(${CH}{1,16})$`),
    dl: (m) => (split(m[1], m[2], 12) ? `https://id.gs1.org/8003/${keyOf('0' + m[1] + m[2])}${dlEncode(m[3])}` : null),
  },
  {
    scheme: 'giai', level: 'id', re: new RegExp(String.raw`^${ID}giai:(\d+)\.(${CH}+)$`),
    dl: (m) => (m[1].length >= 6 && m[1].length <= 12 && m[2].replace(/%../g, '_').length <= 30 - m[1].length ? `https://id.gs1.org/8004/${m[1]}${dlEncode(m[2])}` : null),
  },
  {
    scheme: 'gsrn', level: 'id', re: new RegExp(String.raw`^${ID}gsrn:(\d+)\.(\d+)$`),
    dl: (m) => (split(m[1], m[2], 17) ? `https://id.gs1.org/8018/${keyOf(m[1] + m[2])}` : null),
  },
  {
    scheme: 'gsrnp', level: 'id', re: new RegExp(String.raw`^${ID}gsrnp:(\d+)\.(\d+)$`),
    dl: (m) => (split(m[1], m[2], 17) ? `https://id.gs1.org/8017/${keyOf(m[1] + m[2])}` : null),
  },
  {
    scheme: 'gdti', level: 'id', re: new RegExp(String.raw`^${ID}gdti:(\d+)\.(\d*)\.(${CH}{0,17})$`),
    dl: (m) => (split(m[1], m[2], 12) ? `https://id.gs1.org/253/${keyOf(m[1] + m[2])}${dlEncode(m[3])}` : null),
  },
  {
    scheme: 'cpi', level: 'id', re: new RegExp(String.raw`^${ID}cpi:(\d+)\.(${CPI_CH}+)\.(\d{1,12})$`),
    dl: (m) => (m[1].length >= 6 && m[1].length <= 12 ? `https://id.gs1.org/8010/${dlEncode(m[1] + m[2])}/8011/${m[3]}` : null),
  },
  {
    scheme: 'sgcn', level: 'id', re: new RegExp(String.raw`^${ID}sgcn:(\d+)\.(\d*)\.(\d{1,12})$`),
    dl: (m) => (split(m[1], m[2], 12) ? `https://id.gs1.org/255/${keyOf(m[1] + m[2])}${m[3]}` : null),
  },
  {
    scheme: 'ginc', level: 'id', re: new RegExp(String.raw`^${ID}ginc:(\d+)\.(${CH}+)$`),
    dl: (m) => (m[1].length >= 6 && m[1].length <= 12 ? `https://id.gs1.org/401/${m[1]}${dlEncode(m[2])}` : null),
  },
  {
    scheme: 'gsin', level: 'id', re: new RegExp(String.raw`^${ID}gsin:(\d+)\.(\d+)$`),
    dl: (m) => (split(m[1], m[2], 16) ? `https://id.gs1.org/402/${keyOf(m[1] + m[2])}` : null),
  },
  {
    scheme: 'itip', level: 'id', re: new RegExp(String.raw`^${ID}itip:(\d+)\.(\d+)\.(\d{2})\.(\d{2})\.(${CH}{1,20})$`),
    dl: (m) => (split(m[1], m[2], 13) ? `https://id.gs1.org/8006/${gtinOf(m[1], m[2])}${m[3]}${m[4]}/21/${dlEncode(m[5])}` : null),
  },
  {
    scheme: 'upui', level: 'id', re: new RegExp(String.raw`^${ID}upui:(\d+)\.(\d+)\.(${CH}{1,28})$`),
    dl: (m) => (split(m[1], m[2], 13) ? `https://id.gs1.org/01/${gtinOf(m[1], m[2])}/235/${dlEncode(m[3])}` : null),
  },
  {
    scheme: 'pgln', level: 'id', re: new RegExp(String.raw`^${ID}pgln:(\d+)\.(\d*)$`),
    dl: (m) => (split(m[1], m[2], 12) ? `https://id.gs1.org/417/${keyOf(m[1] + m[2])}` : null),
  },
  {
    scheme: 'lgtin', level: 'class', re: new RegExp(String.raw`^urn:epc:class:lgtin:(\d+)\.(\d+)\.(${CH}{1,20})$`),
    dl: (m) => (split(m[1], m[2], 13) ? `https://id.gs1.org/01/${gtinOf(m[1], m[2])}/10/${dlEncode(m[3])}` : null),
  },
  {
    scheme: 'sgtin', level: 'idpat', re: /^urn:epc:idpat:sgtin:(\d+)\.(\d+)\.\*$/,
    dl: (m) => (split(m[1], m[2], 13) ? `https://id.gs1.org/01/${gtinOf(m[1], m[2])}` : null),
  },
  {
    scheme: 'grai', level: 'idpat', re: /^urn:epc:idpat:grai:(\d+)\.(\d*)\.\*$/,
    dl: (m) => (split(m[1], m[2], 12) ? `https://id.gs1.org/8003/${keyOf('0' + m[1] + m[2])}` : null),
  },
  {
    scheme: 'gdti', level: 'idpat', re: /^urn:epc:idpat:gdti:(\d+)\.(\d*)\.\*$/,
    dl: (m) => (split(m[1], m[2], 12) ? `https://id.gs1.org/253/${keyOf(m[1] + m[2])}` : null),
  },
  {
    scheme: 'sgcn', level: 'idpat', re: /^urn:epc:idpat:sgcn:(\d+)\.(\d*)\.\*$/,
    dl: (m) => (split(m[1], m[2], 12) ? `https://id.gs1.org/255/${keyOf(m[1] + m[2])}` : null),
  },
  {
    scheme: 'cpi', level: 'idpat', re: new RegExp(String.raw`^urn:epc:idpat:cpi:(\d+)\.(${CPI_CH}+)\.\*$`),
    dl: (m) => (m[1].length >= 6 && m[1].length <= 12 ? `https://id.gs1.org/8010/${dlEncode(m[1] + m[2])}` : null),
  },
  {
    scheme: 'itip', level: 'idpat', re: /^urn:epc:idpat:itip:(\d+)\.(\d+)\.(\d{2})\.(\d{2})\.\*$/,
    dl: (m) => (split(m[1], m[2], 13) ? `https://id.gs1.org/8006/${gtinOf(m[1], m[2])}${m[3]}${m[4]}` : null),
  },
  {
    scheme: 'upui', level: 'idpat', re: /^urn:epc:idpat:upui:(\d+)\.(\d+)\.\*$/,
    dl: (m) => (split(m[1], m[2], 13) ? `https://id.gs1.org/01/${gtinOf(m[1], m[2])}` : null),
  },
];

/** Parses an EPC pure identity, class or pattern URI; null when it is none of the supported forms. */
export function parseEpcUri(uri: string): Epc | null {
  if (!uri.startsWith('urn:epc:')) return null;
  for (const r of EPC_RULES) {
    const m = r.re.exec(uri);
    if (!m) continue;
    const dl = r.dl(m);
    if (dl !== null) return { scheme: r.scheme, level: r.level, dl };
  }
  return null;
}

// ---- GS1 Digital Link ----

const DL_KEYS = '01|gtin|8006|itip|8010|cpid|414|gln|417|party|8017|gsrnp|8018|gsrn|255|gcn|00|sscc|253|gdti|401|ginc|402|gsin|8003|grai|8004|giai';
const DL_SHAPE = new RegExp(String.raw`^https?:(//(([^/?#]*)@)?([^/?#:]*)(:([^/?#]*))?)?((([^?#]*)(/(${DL_KEYS})/)(\d{4}[^/]+)(/[^/]+/[^/]+)?/?(\?([^?\n]*))?(#([^\n]*))?)|(/[A-Za-z_-]{10}$))`);
const SHORT_NAMES: [string, string][] = [
  ['/gtin/', '/01/'], ['/itip/', '/8006/'], ['/cpid/', '/8010/'], ['/gln/', '/414/'], ['/party/', '/417/'], ['/gsrnp/', '/8017/'],
  ['/gsrn/', '/8018/'], ['/gcn/', '/255/'], ['/sscc/', '/00/'], ['/gdti/', '/253/'], ['/ginc/', '/401/'], ['/gsin/', '/402/'],
  ['/grai/', '/8003/'], ['/giai/', '/8004/'], ['/cpv/', '/22/'], ['/lot/', '/10/'], ['/ser/', '/21/'],
];
const CANONICAL_HOST = /^https:\/\/id\.gs1\.org\/(01|8006|8010|414|417|8017|8018|255|00|253|401|402|8003|8004)\/(\d{4}[^/]+)(\/[^/]+\/[^/]+)?\/?(\?([^?\n]*))?(#([^\n]*))?/;
// Where the primary key starts, searched in this order when the host is not id.gs1.org.
const PRIMARY_AIS = ['/00/', '/01/', '/253/', '/255/', '/401/', '/402/', '/414/', '/417/', '/8003/', '/8004/', '/8006/', '/8010/', '/8017/', '/8018/'];
// GS1 AI encodable character set 82 as it appears in a URI path segment.
const X = String.raw`[\x22\x27\x2D\x2E\x30-\x39\x3B-\x3F\x41-\x5A\x5F\x61-\x7A]`;
const X_SLASH = String.raw`[\x2F\x22\x27\x2D\x2E\x30-\x39\x3B-\x3F\x41-\x5A\x5F\x61-\x7A]`;
const VALID_DL = [
  /^https:\/\/id\.gs1\.org\/00\/(\d{18})$/,
  new RegExp(String.raw`^https://id\.gs1\.org/01/(\d{14})/21/(${X}{0,20})$`),
  new RegExp(String.raw`^https://id\.gs1\.org/01/(\d{14})/10/(${X}{0,20})$`),
  /^https:\/\/id\.gs1\.org\/01\/(\d{14})$/,
  new RegExp(String.raw`^https://id\.gs1\.org/01/(\d{14})/235/(${X}{0,28})$`),
  new RegExp(String.raw`^https://id\.gs1\.org/253/(\d{13})(${X}{0,17})$`),
  /^https:\/\/id\.gs1\.org\/255\/(\d{13})(\d{0,12})$/,
  new RegExp(String.raw`^https://id\.gs1\.org/401/(${X}{0,30})$`),
  /^https:\/\/id\.gs1\.org\/402\/(\d{17})$/,
  /^https:\/\/id\.gs1\.org\/414\/(\d{13})$/,
  new RegExp(String.raw`^https://id\.gs1\.org/414/(\d{13})/254/(${X}{0,20})$`),
  /^https:\/\/id\.gs1\.org\/417\/(\d{13})$/,
  new RegExp(String.raw`^https://id\.gs1\.org/8003/(\d{14})(${X}{0,16})$`),
  new RegExp(String.raw`^https://id\.gs1\.org/8004/(${X}{0,30})$`),
  new RegExp(String.raw`^https://id\.gs1\.org/8006/(\d{18})/21/(${X}{0,20})$`),
  new RegExp(String.raw`^https://id\.gs1\.org/8006/(\d{18})/10/(${X}{0,20})$`),
  /^https:\/\/id\.gs1\.org\/8006\/(\d{18})$/,
  /^https:\/\/id\.gs1\.org\/8010\/([\x23\x2D\x2F\x30-\x39\x41-\x5A]{0,30})\/8011\/(\d{0,12})$/,
  /^https:\/\/id\.gs1\.org\/8010\/([\x23\x2D\x2F\x30-\x39\x41-\x5A]{0,30})$/,
  /^https:\/\/id\.gs1\.org\/8017\/(\d{18})$/,
  /^https:\/\/id\.gs1\.org\/8018\/(\d{18})$/,
];
const CPV_LAST = new RegExp(String.raw`^https://id\.gs1\.org/(?:8006/\d{18}|01/\d{14})/22/(${X}{0,20})$`);
const CPV_MID = new RegExp(String.raw`^https://id\.gs1\.org/(?:8006/\d{18}|01/\d{14})/22/(${X_SLASH}{0,20})$`);
const LOT_AND_SERIAL = new RegExp(String.raw`^https://id\.gs1\.org/(?:8006/\d{18}|01/\d{14})/10/(${X}{0,20})/21/(${X}{0,20})$`);

/**
 * The canonical GS1 Digital Link URI of a Digital Link on any host: key
 * short names become AIs, the host becomes id.gs1.org, GTINs are padded to
 * 14 digits, query, fragment, CPV and (with a serial) lot are dropped. Null
 * when the URI carries no GS1 key this understands.
 */
export function canonicalDigitalLink(uri: string): string | null {
  if (!DL_SHAPE.test(uri)) return null;
  let u = uri;
  const q = u.indexOf('?');
  if (q >= 0) u = u.slice(0, q);
  for (const [from, to] of SHORT_NAMES) u = u.split(from).join(to);
  if (!CANONICAL_HOST.test(u)) {
    for (const ai of PRIMARY_AIS) {
      const i = u.indexOf(ai);
      if (i !== -1) {
        u = 'https://id.gs1.org' + u.slice(i);
        break;
      }
    }
  }
  if (!/^https:\/\/id\.gs1\.org\/01\/\d{14}/.test(u)) {
    if (/^https:\/\/id\.gs1\.org\/01\/\d{13}/.test(u)) u = u.split('/01/').join('/01/0');
    else if (/^https:\/\/id\.gs1\.org\/01\/\d{12}/.test(u)) u = u.split('/01/').join('/01/00');
    else if (/^https:\/\/id\.gs1\.org\/01\/\d{8}/.test(u)) u = u.split('/01/').join('/01/000000');
  }
  // The consumer product variant (AI 22) is not part of the identity.
  const cpv = u.indexOf('/22/');
  if (cpv >= 0) {
    const after = u.slice(cpv + 4);
    const slash = after.indexOf('/');
    if (CPV_LAST.test(u)) u = u.slice(0, cpv) + (slash >= 0 ? after.slice(slash, -1) : '');
    else if (CPV_MID.test(u)) u = u.slice(0, cpv) + (slash >= 0 ? after.slice(slash) : after);
  }
  // The lowest level of identification only: with a serial, the lot goes.
  if (LOT_AND_SERIAL.test(u)) {
    const lot = u.indexOf('/10/');
    const rest = u.slice(lot + 4);
    u = u.slice(0, lot) + rest.slice(rest.indexOf('/'));
  }
  return VALID_DL.some((re) => re.test(u)) ? u : null;
}

/**
 * The canonical Digital Link of any URI holding a GS1 key (EPC URI, EPC class
 * or pattern URI, Digital Link on any host), or null. This is the identifier
 * rule of the event hash (CBV 2.0 §8.9 as the reference implementation applies it).
 */
export function canonicalGs1Uri(uri: string): string | null {
  if (uri.indexOf('.') < 0) return null;
  if (uri.startsWith('urn:epc:')) {
    const e = parseEpcUri(uri);
    if (e) return e.dl;
  }
  return canonicalDigitalLink(uri);
}

// ---- identifiers as read: RFID tags and barcodes ----

/** EPC tag URI (TDS §12) of the supported 96-bit schemes → pure identity URI. */
function tagUriToPure(uri: string): string | null {
  const m = /^urn:epc:tag:(sgtin|sscc|sgln|grai|giai)-96:[0-7]\.(.+)$/.exec(uri);
  return m ? `urn:epc:id:${m[1]}:${m[2]}` : null;
}

// TDS §14.5 partition tables: [company prefix bits, digits, reference bits, digits].
const PARTITIONS: Record<string, [number, number, number, number][]> = {
  sgtin: [[40, 12, 4, 1], [37, 11, 7, 2], [34, 10, 10, 3], [30, 9, 14, 4], [27, 8, 17, 5], [24, 7, 20, 6], [20, 6, 24, 7]],
  sscc: [[40, 12, 18, 5], [37, 11, 21, 6], [34, 10, 24, 7], [30, 9, 28, 8], [27, 8, 31, 9], [24, 7, 34, 10], [20, 6, 38, 11]],
  sgln: [[40, 12, 1, 0], [37, 11, 4, 1], [34, 10, 7, 2], [30, 9, 11, 3], [27, 8, 14, 4], [24, 7, 17, 5], [20, 6, 21, 6]],
  grai: [[40, 12, 4, 0], [37, 11, 7, 1], [34, 10, 10, 2], [30, 9, 14, 3], [27, 8, 17, 4], [24, 7, 20, 5], [20, 6, 24, 6]],
  giai: [[40, 12, 42, 12], [37, 11, 45, 13], [34, 10, 48, 14], [30, 9, 52, 15], [27, 8, 55, 16], [24, 7, 58, 17], [20, 6, 62, 18]],
};
const HEADERS: Record<number, string> = { 0x30: 'sgtin', 0x31: 'sscc', 0x32: 'sgln', 0x33: 'grai', 0x34: 'giai' };

/** Decodes a 96-bit EPC (SGTIN/SSCC/SGLN/GRAI/GIAI-96) given as 24 hex digits into its pure identity URI; null if it is not one. */
export function decodeEpc96(hex: string): string | null {
  if (!/^[0-9A-Fa-f]{24}$/.test(hex)) return null;
  const v = BigInt('0x' + hex);
  const bits = (from: number, n: number) => (v >> BigInt(96 - from - n)) & ((1n << BigInt(n)) - 1n);
  const scheme = HEADERS[Number(bits(0, 8))];
  if (!scheme) return null;
  const partition = Number(bits(11, 3));
  const p = PARTITIONS[scheme][partition];
  if (!p) return null;
  const [cpBits, cpDigits, refBits, refDigits] = p;
  const cp = bits(14, cpBits);
  const ref = bits(14 + cpBits, refBits);
  if (cp >= 10n ** BigInt(cpDigits)) return null;
  const cpS = cp.toString().padStart(cpDigits, '0');
  const tail = 14 + cpBits + refBits;
  if (scheme === 'giai') {
    // The asset reference is an integer (no leading zeros) within its digit budget.
    if (ref >= 10n ** BigInt(refDigits)) return null;
    return `urn:epc:id:giai:${cpS}.${ref.toString()}`;
  }
  if (refDigits === 0 ? ref !== 0n : ref >= 10n ** BigInt(refDigits)) return null;
  const refS = refDigits === 0 ? '' : ref.toString().padStart(refDigits, '0');
  const rest = bits(tail, 96 - tail);
  switch (scheme) {
    case 'sgtin':
      return `urn:epc:id:sgtin:${cpS}.${refS}.${rest.toString()}`;
    case 'sscc':
      return rest === 0n ? `urn:epc:id:sscc:${cpS}.${refS}` : null; // 24 bits unallocated, zero
    case 'sgln':
      return `urn:epc:id:sgln:${cpS}.${refS}.${rest.toString()}`;
    case 'grai':
      return `urn:epc:id:grai:${cpS}.${refS}.${rest.toString()}`;
  }
  return null;
}

// GS1 element strings (barcodes): the AIs that identify one instance.
const AI_FIXED: Record<string, number> = { '00': 18, '01': 14, '414': 13 };
const AI_VAR: Record<string, number> = { '21': 20, '10': 20, '254': 20, '8003': 30, '8004': 30 };

/** Parses "(00)…", "(01)…(21)…", "(8003)…", "(8004)…", "(414)…(254)…" into a canonical Digital Link URI of one instance. */
export function barcodeToDigitalLink(s: string): string | { error: string } {
  const parts = [...s.matchAll(/\((\d{2,4})\)([^()]*)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== s) return { error: 'not a GS1 element string like "(00)…" or "(01)…(21)…"' };
  const ai = new Map<string, string>();
  for (const [, k, v] of parts) {
    const max = AI_FIXED[k] ?? AI_VAR[k];
    if (max === undefined) return { error: `AI (${k}) does not identify an object here (use 00, 01+21, 414+254, 8003, 8004)` };
    if (AI_FIXED[k] !== undefined ? !new RegExp(`^\\d{${max}}$`).test(v) : !(v.length >= 1 && v.length <= max)) return { error: `AI (${k}) value has the wrong length` };
    if (ai.has(k)) return { error: `AI (${k}) appears twice` };
    ai.set(k, v);
  }
  const check = (k: string, digits: string) => (validCheckDigit(digits) ? null : { error: `AI (${k}) check digit is wrong` });
  let uri: string;
  if (ai.has('00') && ai.size === 1) {
    const e = check('00', ai.get('00')!);
    if (e) return e;
    uri = `https://id.gs1.org/00/${ai.get('00')}`;
  } else if (ai.has('01') && ai.has('21')) {
    const e = check('01', ai.get('01')!);
    if (e) return e;
    uri = `https://id.gs1.org/01/${ai.get('01')}/21/${encodeURIComponent(ai.get('21')!)}`;
  } else if (ai.has('01')) {
    return { error: 'a GTIN without a serial (21) names a class of products, not one object' };
  } else if (ai.has('8003') && ai.size === 1) {
    const g = ai.get('8003')!;
    if (!/^\d{14}/.test(g) || g.length < 15) return { error: 'AI (8003) needs 14 digits and a serial (a GRAI without serial is a class)' };
    const e = check('8003', g.slice(0, 14));
    if (e) return e;
    uri = `https://id.gs1.org/8003/${g.slice(0, 14)}${encodeURIComponent(g.slice(14))}`;
  } else if (ai.has('8004') && ai.size === 1) {
    uri = `https://id.gs1.org/8004/${encodeURIComponent(ai.get('8004')!)}`;
  } else if (ai.has('414')) {
    const e = check('414', ai.get('414')!);
    if (e) return e;
    uri = `https://id.gs1.org/414/${ai.get('414')}${ai.has('254') ? `/254/${encodeURIComponent(ai.get('254')!)}` : ''}`;
  } else return { error: 'unsupported combination of AIs' };
  return canonicalDigitalLink(uri) ?? { error: 'not a valid GS1 key' };
}

/** Checks the check digit of the primary key of a canonical Digital Link (EPC URIs have none to check). */
export function digitalLinkCheckDigitOk(dl: string): boolean {
  const m = /^https:\/\/id\.gs1\.org\/(00|01|414|417|8017|8018|402|253|255|8003|8006)\/(\d+)/.exec(dl);
  if (!m) return true;
  const len: Record<string, number> = { '00': 18, '01': 14, '414': 13, '417': 13, '8017': 18, '8018': 18, '402': 17, '253': 13, '255': 13, '8003': 14, '8006': 14 };
  return validCheckDigit(m[2].slice(0, len[m[1]]));
}

/**
 * An identifier as an RFID reader or scanner reports it, as it goes into an
 * event: EPC pure identity URIs as they are; tag URIs and 96-bit hex as their
 * pure identity URI; Digital Link URIs and barcodes as canonical Digital Links.
 * Returns `{ error }` when it is none of those (the caller rejects the read).
 */
export function normaliseReadId(id: string): string | { error: string } {
  const s = id.trim();
  if (s.startsWith('urn:epc:id:')) {
    const e = parseEpcUri(s);
    return e ? s : { error: 'not a valid EPC pure identity URI (TDS §6)' };
  }
  if (s.startsWith('urn:epc:tag:')) {
    const pure = tagUriToPure(s);
    return pure && parseEpcUri(pure) ? pure : { error: 'not a valid EPC tag URI of a 96-bit scheme (sgtin, sscc, sgln, grai, giai)' };
  }
  if (s.startsWith('urn:epc:')) return { error: 'a class or pattern URI names many objects, not one read' };
  if (/^https?:\/\//.test(s)) {
    const dl = canonicalDigitalLink(s);
    if (!dl) return { error: 'not a GS1 Digital Link URI with a key' };
    if (!digitalLinkCheckDigitOk(dl)) return { error: 'GS1 Digital Link with a wrong check digit' };
    return dl;
  }
  if (s.startsWith('(')) return barcodeToDigitalLink(s);
  if (/^[0-9A-Fa-f]{24}$/.test(s)) return decodeEpc96(s) ?? { error: '96-bit EPC of an unsupported scheme or with an invalid partition' };
  return { error: 'not an EPC URI, a GS1 Digital Link, a GS1 element string or 96-bit EPC hex' };
}
