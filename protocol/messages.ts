import { z } from "zod";
import { type commandBody, commandMessage, resultMessage } from "./schemas/commands.ts";
import { ackMessage, errorMessage, pingMessage, pongMessage } from "./schemas/control.ts";
import { type eventBody, eventMessage } from "./schemas/events.ts";
import { helloMessage, welcomeMessage } from "./schemas/handshake.ts";

/** One schema per message type; a type means the same thing whichever side sends it. */
export const MESSAGE_SCHEMAS = {
  hello: helloMessage,
  welcome: welcomeMessage,
  command: commandMessage,
  result: resultMessage,
  event: eventMessage,
  ack: ackMessage,
  ping: pingMessage,
  pong: pongMessage,
  error: errorMessage,
} as const;

export type MessageType = keyof typeof MESSAGE_SCHEMAS;
export const MESSAGE_TYPES = Object.keys(MESSAGE_SCHEMAS) as MessageType[];

/** Who may send which type. `ping`, `pong` and `error` go both ways. */
export const AGENT_TO_HUB_TYPES = ["hello", "result", "event", "ping", "pong", "error"] as const;
export const HUB_TO_AGENT_TYPES = ["welcome", "command", "ack", "ping", "pong", "error"] as const;

export const agentToHubMessage = z.discriminatedUnion("type", [
  helloMessage,
  resultMessage,
  eventMessage,
  pingMessage,
  pongMessage,
  errorMessage,
]);
export const hubToAgentMessage = z.discriminatedUnion("type", [
  welcomeMessage,
  commandMessage,
  ackMessage,
  pingMessage,
  pongMessage,
  errorMessage,
]);

export type AgentToHubMessage = z.infer<typeof agentToHubMessage>;
export type HubToAgentMessage = z.infer<typeof hubToAgentMessage>;
export type Message = AgentToHubMessage | HubToAgentMessage;
export type MessageOf<T extends MessageType> = z.infer<(typeof MESSAGE_SCHEMAS)[T]>;

export type HelloMessage = MessageOf<"hello">;
export type WelcomeMessage = MessageOf<"welcome">;
export type CommandMessage = MessageOf<"command">;
export type ResultMessage = MessageOf<"result">;
export type EventMessage = MessageOf<"event">;
export type AckMessage = MessageOf<"ack">;
export type PingMessage = MessageOf<"ping">;
export type PongMessage = MessageOf<"pong">;
export type ErrorMessage = MessageOf<"error">;

export type Command = z.infer<typeof commandBody>;
export type CommandOf<N extends Command["name"]> = Extract<Command, { name: N }>;
export type Event = z.infer<typeof eventBody>;
export type EventOf<K extends Event["kind"]> = Extract<Event, { kind: K }>;
export type CommandResultData<N extends Command["name"]> = Extract<
  ResultMessage,
  { ok: true; name: N }
>["data"];
