import { assertEquals } from "../tests/_assert.ts";
import { ErrorCode, errorName } from "../protocol/errors.ts";
import { CLIENT_CODES, ClientError } from "./errors.ts";
import { classify, isSessionGone, type RetryContext } from "./retry.ts";

const none: RetryContext = { complete: false, abandonedHandshake: false };
const complete: RetryContext = { complete: true, abandonedHandshake: false };
const abandoned: RetryContext = { complete: false, abandonedHandshake: true };
const wire = (code: number) => ClientError.fromWire(code, "x");

Deno.test("classify: the table of outcomes", () => {
  const cases: [string, unknown, RetryContext, string][] = [
    ["reset", new Deno.errors.ConnectionReset("r"), none, "retry"],
    ["refused", new Deno.errors.ConnectionRefused("r"), none, "retry"],
    ["broken pipe", new Deno.errors.BrokenPipe("r"), none, "retry"],
    ["EOF mid-frame", new Deno.errors.UnexpectedEof("r"), none, "retry"],
    ["OS timeout", new Deno.errors.TimedOut("r"), none, "retry"],
    [
      "unreachable network",
      new Deno.errors.NetworkUnreachable("r"),
      none,
      "retry",
    ],
    ["abort timeout", new DOMException("t", "TimeoutError"), none, "retry"],
    ["a bug", new TypeError("x is undefined"), none, "final"],
    [
      "connection lost",
      new ClientError(CLIENT_CODES.CONNECTION_LOST, "eof"),
      none,
      "retry",
    ],
    ["GOAWAY", new ClientError(CLIENT_CODES.GOING_AWAY, "bye"), none, "retry"],
    ["tls error", new ClientError(CLIENT_CODES.TLS_ERROR, "t"), none, "final"],
    [
      "tls mismatch",
      new ClientError(CLIENT_CODES.TLS_MISMATCH, "t"),
      none,
      "final",
    ],
    [
      "violation",
      new ClientError(CLIENT_CODES.PROTOCOL_VIOLATION, "v"),
      none,
      "final",
    ],
    ["server_busy", wire(ErrorCode.SERVER_BUSY), none, "retry"],
    ["store_unavailable", wire(ErrorCode.STORE_UNAVAILABLE), none, "retry"],
    ["shutting_down", wire(ErrorCode.SHUTTING_DOWN), none, "retry"],
    ["client_timeout", wire(ErrorCode.CLIENT_TIMEOUT), none, "retry"],
    ["slow_consumer", wire(ErrorCode.SLOW_CONSUMER), none, "retry"],
    ["session_expired", wire(ErrorCode.SESSION_EXPIRED), none, "final"],
    ["bad_token", wire(ErrorCode.BAD_TOKEN), none, "final"],
    ["unknown wire code", wire(200), none, "final"],
    [
      "session_completed without FINAL",
      wire(ErrorCode.SESSION_COMPLETED),
      none,
      "final",
    ],
    [
      "session_completed with FINAL",
      wire(ErrorCode.SESSION_COMPLETED),
      complete,
      "complete",
    ],
    [
      "unknown_session with FINAL",
      wire(ErrorCode.UNKNOWN_SESSION),
      complete,
      "complete",
    ],
    [
      "session_expired with FINAL",
      wire(ErrorCode.SESSION_EXPIRED),
      complete,
      "final",
    ],
    ["taken_over", wire(ErrorCode.TAKEN_OVER), none, "final"],
    [
      "taken_over after an abandoned handshake",
      wire(ErrorCode.TAKEN_OVER),
      abandoned,
      "retry",
    ],
    ["session_in_use", wire(ErrorCode.SESSION_IN_USE), none, "final"],
    [
      "session_in_use after an abandoned handshake (simulator seed 17, 300 clients)",
      wire(ErrorCode.SESSION_IN_USE),
      abandoned,
      "retry",
    ],
    [
      "taken_over with FINAL (a completion answered late; simulator seed 30)",
      wire(ErrorCode.TAKEN_OVER),
      complete,
      "retry",
    ],
  ];
  for (const [what, err, ctx, want] of cases) {
    assertEquals(classify(err, ctx), want, what);
  }
});

Deno.test("ClientError.fromWire names the code like the server does and keeps the number", () => {
  const e = ClientError.fromWire(ErrorCode.SERVER_BUSY, "Server is busy");
  assertEquals([e.name, e.code, e.wireCode, e.message], [
    "ClientError",
    errorName(ErrorCode.SERVER_BUSY),
    ErrorCode.SERVER_BUSY,
    "Server is busy",
  ]);
  assertEquals(ClientError.fromWire(99, "?").code, "unknown_99");
});

Deno.test("isSessionGone: codes after which a saved state is useless", () => {
  for (
    const c of [
      "session_expired",
      "unknown_session",
      "bad_token",
      "session_completed",
      "invalid_offset",
    ]
  ) {
    assertEquals(isSessionGone(c), true, c);
  }
  for (
    const c of [
      "unreachable",
      "aborted",
      "tls_error",
      "checkpoint_failed",
      "server_busy",
    ]
  ) {
    assertEquals(isSessionGone(c), false, c);
  }
});
