// PKCS#11 constants (PKCS#11 v2.40 / v3.0 numeric values) used by the driver.
// Kept here rather than read from pkcs11js so that importing the driver does
// not load the native addon (it is loaded on first use only), and because
// pkcs11js has no names for the v3.0 EdDSA ones.

export const CKF_OS_LOCKING_OK = 0x2; // C_Initialize flags

export const CKF_RW_SESSION = 0x2;
export const CKF_SERIAL_SESSION = 0x4;
export const CKU_SO = 0;
export const CKU_USER = 1;

// Slot info flags
export const CKF_TOKEN_PRESENT = 0x1;
export const CKF_REMOVABLE_DEVICE = 0x2;
export const CKF_HW_SLOT = 0x4;

// Token info flags
export const CKF_RNG = 0x1;
export const CKF_WRITE_PROTECTED = 0x2;
export const CKF_LOGIN_REQUIRED = 0x4;
export const CKF_USER_PIN_INITIALIZED = 0x8;
export const CKF_PROTECTED_AUTHENTICATION_PATH = 0x100;
export const CKF_TOKEN_INITIALIZED = 0x400;
export const CKF_USER_PIN_COUNT_LOW = 0x10000;
export const CKF_USER_PIN_FINAL_TRY = 0x20000;
export const CKF_USER_PIN_LOCKED = 0x40000;
export const CKF_USER_PIN_TO_BE_CHANGED = 0x80000;

// Mechanism info flags
export const CKF_SIGN = 0x800;
export const CKF_GENERATE_KEY_PAIR = 0x10000;

// Object classes
export const CKO_DATA = 0;
export const CKO_CERTIFICATE = 1;
export const CKO_PUBLIC_KEY = 2;
export const CKO_PRIVATE_KEY = 3;
export const CKO_SECRET_KEY = 4;

// Key types
export const CKK_RSA = 0x0;
export const CKK_EC = 0x3;
export const CKK_EC_EDWARDS = 0x40;

// Attributes
export const CKA_CLASS = 0x0;
export const CKA_TOKEN = 0x1;
export const CKA_PRIVATE = 0x2;
export const CKA_LABEL = 0x3;
export const CKA_KEY_TYPE = 0x100;
export const CKA_ID = 0x102;
export const CKA_SENSITIVE = 0x103;
export const CKA_ENCRYPT = 0x104;
export const CKA_DECRYPT = 0x105;
export const CKA_WRAP = 0x106;
export const CKA_UNWRAP = 0x107;
export const CKA_SIGN = 0x108;
export const CKA_SIGN_RECOVER = 0x109;
export const CKA_VERIFY = 0x10a;
export const CKA_DERIVE = 0x10c;
export const CKA_MODULUS = 0x120;
export const CKA_MODULUS_BITS = 0x121;
export const CKA_PUBLIC_EXPONENT = 0x122;
export const CKA_PUBLIC_KEY_INFO = 0x129;
export const CKA_EXTRACTABLE = 0x162;
export const CKA_LOCAL = 0x163;
export const CKA_NEVER_EXTRACTABLE = 0x164;
export const CKA_ALWAYS_SENSITIVE = 0x165;
export const CKA_MODIFIABLE = 0x170;
export const CKA_EC_PARAMS = 0x180;
export const CKA_EC_POINT = 0x181;
export const CKA_ALWAYS_AUTHENTICATE = 0x202;

// Mechanisms
export const CKM_RSA_PKCS_KEY_PAIR_GEN = 0x0;
export const CKM_RSA_PKCS_PSS = 0xd;
export const CKM_SHA256_RSA_PKCS_PSS = 0x43;
export const CKM_SHA256 = 0x250;
export const CKM_EC_KEY_PAIR_GEN = 0x1040;
export const CKM_ECDSA = 0x1041;
export const CKM_EC_EDWARDS_KEY_PAIR_GEN = 0x1055;
export const CKM_EDDSA = 0x1057;
export const CKG_MGF1_SHA256 = 0x2;
/** pkcs11js's parameter type tag for CK_RSA_PKCS_PSS_PARAMS (its CK_PARAMS_RSA_PSS). */
export const CK_PARAMS_RSA_PSS = 5;

export const MECHANISM_NAMES: Record<number, string> = {
  [CKM_RSA_PKCS_KEY_PAIR_GEN]: 'CKM_RSA_PKCS_KEY_PAIR_GEN',
  [CKM_RSA_PKCS_PSS]: 'CKM_RSA_PKCS_PSS',
  [CKM_SHA256_RSA_PKCS_PSS]: 'CKM_SHA256_RSA_PKCS_PSS',
  [CKM_EC_KEY_PAIR_GEN]: 'CKM_EC_KEY_PAIR_GEN',
  [CKM_ECDSA]: 'CKM_ECDSA',
  [CKM_EC_EDWARDS_KEY_PAIR_GEN]: 'CKM_EC_EDWARDS_KEY_PAIR_GEN',
  [CKM_EDDSA]: 'CKM_EDDSA',
};

export function mechanismName(m: number): string {
  return MECHANISM_NAMES[m] ?? `0x${m.toString(16)}`;
}

// Return values the driver treats specially (PKCS#11 v2.40 §11.1).
export const CKR = {
  OK: 0x0,
  SLOT_ID_INVALID: 0x3,
  GENERAL_ERROR: 0x5,
  FUNCTION_FAILED: 0x6,
  ARGUMENTS_BAD: 0x7,
  CANT_LOCK: 0xa,
  ATTRIBUTE_SENSITIVE: 0x11,
  ATTRIBUTE_TYPE_INVALID: 0x12,
  ATTRIBUTE_VALUE_INVALID: 0x13,
  DATA_LEN_RANGE: 0x21,
  DEVICE_ERROR: 0x30,
  DEVICE_MEMORY: 0x31,
  DEVICE_REMOVED: 0x32,
  FUNCTION_NOT_SUPPORTED: 0x54,
  KEY_HANDLE_INVALID: 0x60,
  KEY_TYPE_INCONSISTENT: 0x63,
  KEY_FUNCTION_NOT_PERMITTED: 0x68,
  MECHANISM_INVALID: 0x70,
  MECHANISM_PARAM_INVALID: 0x71,
  OBJECT_HANDLE_INVALID: 0x82,
  OPERATION_ACTIVE: 0x90,
  PIN_INCORRECT: 0xa0,
  PIN_INVALID: 0xa1,
  PIN_LEN_RANGE: 0xa2,
  PIN_EXPIRED: 0xa3,
  PIN_LOCKED: 0xa4,
  SESSION_CLOSED: 0xb0,
  SESSION_COUNT: 0xb1,
  SESSION_HANDLE_INVALID: 0xb3,
  SESSION_READ_ONLY: 0xb5,
  TEMPLATE_INCOMPLETE: 0xd0,
  TEMPLATE_INCONSISTENT: 0xd1,
  TOKEN_NOT_PRESENT: 0xe0,
  TOKEN_NOT_RECOGNIZED: 0xe1,
  TOKEN_WRITE_PROTECTED: 0xe2,
  USER_ALREADY_LOGGED_IN: 0x100,
  USER_NOT_LOGGED_IN: 0x101,
  USER_PIN_NOT_INITIALIZED: 0x102,
  DOMAIN_PARAMS_INVALID: 0x130,
  CURVE_NOT_SUPPORTED: 0x140,
  BUFFER_TOO_SMALL: 0x150,
  CRYPTOKI_NOT_INITIALIZED: 0x190,
  CRYPTOKI_ALREADY_INITIALIZED: 0x191,
} as const;

/** DER OIDs (full TLV) of the curves the driver knows, as found in CKA_EC_PARAMS. */
export const EC_PARAMS = {
  P256: '06082a8648ce3d030107', // 1.2.840.10045.3.1.7 prime256v1
  secp256k1: '06052b8104000a', // 1.3.132.0.10
  P384: '06052b81040022', // 1.3.132.0.34
  Ed25519: '06032b6570', // 1.3.101.112 (RFC 8410)
  /** PKCS#11 3.0 also allows the curve name as a PrintableString. */
  Ed25519Name: '130c656477617264733235353139', // PrintableString "edwards25519"
} as const;
