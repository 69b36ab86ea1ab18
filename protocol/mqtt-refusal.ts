// Refusals by an MQTT broker as mqtt.js reports them: an Error whose `code`
// is the packet's reason code. Shared by the light node's sync and the
// ledger, which both tell an operator what to fix instead of "mqtt error".

/** The reason code of a refusal by the broker in an mqtt.js error, or undefined for any other error. */
export function brokerRefusal(err: unknown, connack = false): { code: number; reason: string } | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'number' || !Number.isInteger(code)) return undefined;
  // MQTT 5 reason codes ≥ 0x80 are failures (§2.4); 3.1.1 CONNACK return codes 1–5 (§3.2.2.3).
  if (code < 0x80 && !(connack && code >= 1 && code <= 5)) return undefined;
  const reason = String((err as Error).message ?? '').replace(/^(Connection refused|Publish error|Subscribe error): /, '') || 'refused';
  return { code, reason };
}

/**
 * A CONNACK code that means the login itself was refused: 3.1.1 "bad user
 * name or password" (4) and "not authorized" (5); MQTT 5 0x86, 0x87 and
 * "bad authentication method" (0x8C). mosquitto 2.0 answers a wrong password
 * with "not authorized".
 */
export function isLoginRefusal(code: number): boolean {
  return code === 4 || code === 5 || code === 0x86 || code === 0x87 || code === 0x8c;
}
