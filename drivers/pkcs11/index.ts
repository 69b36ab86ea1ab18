// PKCS#11 signer driver: hardware keys (USB tokens, HSMs, TPMs via their
// PKCS#11 modules) behind the same Signer interface as the software driver.
// See docs/KEYS.md for provisioning, URIs, PINs and errors.
export { openPkcs11Signer, Pkcs11Signer, type Pkcs11SignerOptions, type Pkcs11SignerState, type Pkcs11SignerStats, type Pkcs11SignerStatus } from './signer.js';
export { Pkcs11Token, listTokens, resolveSelection, type TokenOpenOptions, type Pkcs11Selection, type TokenDescription, type KeyDescription, type GenerateKeyOptions, type KeySelector, type TokenSelector } from './token.js';
export { parsePkcs11Uri, formatPkcs11Uri, type Pkcs11Uri, type Pkcs11ObjectType } from './uri.js';
export { Pkcs11DriverError, type Pkcs11Reason } from './errors.js';
export { DEFAULT_PIN_ENV, readPin, type PinSource } from './pin.js';
export { pkcs11OptionsFromConfig } from './config.js';
