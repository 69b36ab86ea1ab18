// Typed errors of the MCU link. `kind` says what went wrong in terms an
// operator can act on; `code` is the project-wide ErrorCode. protocol/errors.ts
// has no link-specific code yet (the lead owns that union: LINK_ERROR is
// requested), so kinds map onto existing codes here, in one place.
import { IscmError, type ErrorCode } from '../protocol/errors.js';

export type LinkErrorKind =
  | 'FRAME' // bytes on the wire are not a valid frame (COBS, CRC, size, version byte, type)
  | 'MESSAGE' // a frame's CBOR payload is not a valid message of its type
  | 'VERSION' // no common link protocol version: the message names both sides'
  | 'HANDSHAKE' // the peer did something that needs a handshake first, or a handshake failed
  | 'DEAD_LINK' // nothing received for longer than the heartbeat allows
  | 'TIMEOUT' // a request (CONFIG) was not answered in time
  | 'REMOTE' // the peer sent an ERROR frame
  | 'STORE' // the consumer could not make readings durable, or the link state could not be saved
  | 'NOT_CONNECTED' // no link (no handshake) to send on
  | 'CLOSED'; // used after close()

const CODE: { [K in LinkErrorKind]: ErrorCode } = {
  FRAME: 'LINK_ERROR',
  MESSAGE: 'LINK_ERROR',
  VERSION: 'LINK_ERROR',
  HANDSHAKE: 'LINK_ERROR',
  DEAD_LINK: 'LINK_ERROR',
  TIMEOUT: 'LINK_ERROR',
  REMOTE: 'LINK_ERROR',
  STORE: 'LINK_ERROR',
  NOT_CONNECTED: 'USAGE',
  CLOSED: 'USAGE',
};

export class LinkError extends IscmError {
  readonly kind: LinkErrorKind;
  constructor(kind: LinkErrorKind, message: string, field?: string) {
    super(CODE[kind], message, field);
    this.name = 'LinkError';
    this.kind = kind;
  }
}
