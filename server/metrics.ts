/**
 * Server metrics and their Prometheus text exposition.
 *
 * @module
 */

/** Monotonic counters, updated in place by the server. */
export interface Counters {
  /** New sessions started. */
  sessionsStarted: number;
  /** Sessions completed and acknowledged (ACK(count)). */
  sessionsCompleted: number;
  /** Sessions that expired unresumed. */
  sessionsExpired: number;
  /** Attachments closed because the session was resumed elsewhere. */
  sessionsTakenOver: number;
  /** Successful resumes. */
  resumes: number;
  /** Numbers (and FINALs) handed to the socket. */
  numbersSent: number;
  /** Connections accepted. */
  connectionsAccepted: number;
  /** Connections refused at the connection limit. */
  connectionsRejectedBusy: number;
  /** Connections refused by the per-address handshake rate limit. */
  connectionsRejectedRate: number;
  /** Lag-based: a stream lagged with no ACK progress for the stall limit. */
  slowConsumersDropped: number;
  /** Failed store operations. */
  storeErrors: number;
  /** ACK frames received. */
  acksReceived: number;
  /** Connections closed because the client sent nothing for the client timeout. */
  clientTimeouts: number;
}

/** A fresh set of zeroed counters. */
export function newCounters(): Counters {
  return {
    sessionsStarted: 0,
    sessionsCompleted: 0,
    sessionsExpired: 0,
    sessionsTakenOver: 0,
    resumes: 0,
    numbersSent: 0,
    connectionsAccepted: 0,
    connectionsRejectedBusy: 0,
    connectionsRejectedRate: 0,
    slowConsumersDropped: 0,
    storeErrors: 0,
    acksReceived: 0,
    clientTimeouts: 0,
  };
}

/** Everything `/metrics` shows. */
export interface MetricsSnapshot {
  /** Open client connections. */
  connections: number;
  /** Sessions this server holds, attached or awaiting resume. */
  sessions: number;
  /** Numbers sent and not yet acknowledged, summed over the live streams. */
  unackedNumbers: number;
  /** The largest `sent − acked` any stream reached since the server started. */
  unackedPeak: number;
  /** The flow-control window announced in WELCOME (numbers). */
  window: number;
  /** Monotonic counters, updated in place by the server. */
  counters: Counters;
  /** Handshake refusals by error name. */
  refusals: ReadonlyMap<string, number>;
  /** Store operations by operation name. */
  storeOps: ReadonlyMap<string, number>;
}

function line(
  out: string[],
  name: string,
  type: "gauge" | "counter",
  help: string,
  value: number,
): void {
  out.push(
    `# HELP ${name} ${help}`,
    `# TYPE ${name} ${type}`,
    `${name} ${value}`,
  );
}

function labelled(
  out: string[],
  name: string,
  help: string,
  label: string,
  values: ReadonlyMap<string, number>,
): void {
  out.push(`# HELP ${name} ${help}`, `# TYPE ${name} counter`);
  for (const [k, v] of values) out.push(`${name}{${label}="${k}"} ${v}`);
}

/**
 * Renders a snapshot in the Prometheus text format (version 0.0.4).
 *
 * @example
 * ```ts
 * const text = renderPrometheus(server.metrics());
 * ```
 */
export function renderPrometheus(m: MetricsSnapshot): string {
  const c = m.counters;
  const out: string[] = [];
  line(
    out,
    "seqstream_connections",
    "gauge",
    "Open client connections.",
    m.connections,
  );
  line(
    out,
    "seqstream_sessions",
    "gauge",
    "Sessions this server holds, attached or awaiting resume.",
    m.sessions,
  );
  line(
    out,
    "seqstream_unacked_numbers",
    "gauge",
    "Numbers sent and not yet acknowledged, over all live streams.",
    m.unackedNumbers,
  );
  line(
    out,
    "seqstream_unacked_peak",
    "gauge",
    "Largest count of unacknowledged numbers any one stream had in flight since start.",
    m.unackedPeak,
  );
  line(
    out,
    "seqstream_window",
    "gauge",
    "Flow-control window: most numbers in flight per stream.",
    m.window,
  );
  line(
    out,
    "seqstream_sessions_started_total",
    "counter",
    "New sessions started.",
    c.sessionsStarted,
  );
  line(
    out,
    "seqstream_sessions_completed_total",
    "counter",
    "Sessions completed and acknowledged.",
    c.sessionsCompleted,
  );
  line(
    out,
    "seqstream_sessions_expired_total",
    "counter",
    "Sessions expired unresumed.",
    c.sessionsExpired,
  );
  line(
    out,
    "seqstream_sessions_taken_over_total",
    "counter",
    "Attachments closed because the session was resumed elsewhere.",
    c.sessionsTakenOver,
  );
  line(
    out,
    "seqstream_resumes_total",
    "counter",
    "Successful resumes.",
    c.resumes,
  );
  line(
    out,
    "seqstream_numbers_sent_total",
    "counter",
    "Numbers written to clients.",
    c.numbersSent,
  );
  line(
    out,
    "seqstream_connections_accepted_total",
    "counter",
    "Connections accepted.",
    c.connectionsAccepted,
  );
  line(
    out,
    "seqstream_connections_rejected_busy_total",
    "counter",
    "Connections refused at --max-connections.",
    c.connectionsRejectedBusy,
  );
  line(
    out,
    "seqstream_connections_rejected_rate_total",
    "counter",
    "Connections refused at --max-handshakes-per-sec.",
    c.connectionsRejectedRate,
  );
  line(
    out,
    "seqstream_slow_consumers_dropped_total",
    "counter",
    "Connections dropped because the client lagged with no acknowledgement progress for the stall limit.",
    c.slowConsumersDropped,
  );
  line(
    out,
    "seqstream_client_timeouts_total",
    "counter",
    "Connections closed because the client sent nothing for the client timeout.",
    c.clientTimeouts,
  );
  line(
    out,
    "seqstream_acks_received_total",
    "counter",
    "Delivery acknowledgements received.",
    c.acksReceived,
  );
  line(
    out,
    "seqstream_store_errors_total",
    "counter",
    "Failed store operations.",
    c.storeErrors,
  );
  labelled(
    out,
    "seqstream_store_ops_total",
    "Store operations by kind.",
    "op",
    m.storeOps,
  );
  labelled(
    out,
    "seqstream_handshake_failures_total",
    "Hellos and resumes refused, by error code.",
    "code",
    m.refusals,
  );
  return out.join("\n") + "\n";
}
