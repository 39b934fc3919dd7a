/**
 * Codes of the `error` frame: why a received frame was rejected. The frame is dropped, the connection
 * stays up. `parseMessage` returns exactly these codes; `unexpected_message` is raised by the session
 * (a valid frame at the wrong time, e.g. a command before `welcome`).
 */
export const FRAME_ERRORS = {
  binary_frame: "a binary frame; only JSON text frames are allowed",
  frame_too_large: "the frame is larger than MAX_FRAME_BYTES",
  invalid_utf8: "the frame is not valid UTF-8",
  invalid_json: "the frame is not JSON",
  too_deep: "objects/arrays nest deeper than MAX_NESTING_DEPTH",
  forbidden_key: "a key __proto__, constructor or prototype appears somewhere",
  not_an_object: "the JSON value is not an object",
  unknown_message_type: "`type` is missing or not a message type of this protocol version",
  wrong_direction: "a message type that this side sends but never receives",
  unknown_command: "a command whose name is not in the closed set",
  unknown_event_kind: "an event whose kind is not in the closed set",
  invalid_message: "the frame violates the schema of its type (the message names field, expected and actual)",
  unexpected_message: "a valid frame that is not allowed now (e.g. a command before welcome)",
} as const;

export type FrameErrorCode = keyof typeof FRAME_ERRORS;
export const FRAME_ERROR_CODES = Object.keys(FRAME_ERRORS) as [FrameErrorCode, ...FrameErrorCode[]];

/**
 * Codes of a failed command `result`. Stable: hubs branch on them. `retryable` is the default the agent
 * sends; `details` lists the keys the agent puts into `error.details` for that code.
 */
export const COMMAND_ERRORS = {
  in_progress: {
    retryable: true,
    details: [],
    meaning: "not final: the first execution of this id has not finished; its result follows",
  },
  invalid_params: { retryable: false, details: [], meaning: "params violate the command's schema" },
  unknown_command: { retryable: false, details: [], meaning: "this agent does not know the command name" },
  already_running: {
    retryable: false,
    details: ["backupId"],
    meaning:
      "a backup is already running; details.backupId is the running one (follow it, do not start another)",
  },
  busy: {
    retryable: true,
    details: ["operation", "operationId"],
    meaning: "another exclusive operation (snapshot, restore reconciliation, enroll) holds the guest lock",
  },
  identity_unverified: {
    retryable: false,
    details: ["identityState"],
    meaning: "identity is unverified or a restored copy: no backup or snapshot until enrolled",
  },
  pve_auth: { retryable: false, details: [], meaning: "PVE rejected the token (401)" },
  pve_permission: {
    retryable: false,
    details: ["path", "privilege"],
    meaning: "the token lacks a privilege (403)",
  },
  pve_unreachable: {
    retryable: true,
    details: [],
    meaning: "the PVE API did not answer (network, TLS, 5xx)",
  },
  pve_guest_locked: {
    retryable: true,
    details: ["lock"],
    meaning: "the guest has a PVE lock (backup, snapshot, …)",
  },
  docker_unreachable: { retryable: true, details: [], meaning: "the Docker Engine API did not answer" },
  not_found: {
    retryable: false,
    details: ["name"],
    meaning: "the named snapshot does not exist (snapshot.delete)",
  },
  already_exists: { retryable: false, details: ["name"], meaning: "a snapshot with that name exists" },
  config_invalid: {
    retryable: false,
    details: ["key"],
    meaning: "config.reload found an invalid config; the old one stays",
  },
  shutting_down: {
    retryable: true,
    details: [],
    meaning: "the agent is stopping; send the command again later",
  },
  internal: { retryable: false, details: [], meaning: "a bug in the agent; the message says what failed" },
} as const;

export type CommandErrorCode = keyof typeof COMMAND_ERRORS;
export const COMMAND_ERROR_CODES = Object.keys(COMMAND_ERRORS) as [CommandErrorCode, ...CommandErrorCode[]];
