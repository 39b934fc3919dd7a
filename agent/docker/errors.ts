import { AgentError } from "../lib/errors.ts";

/**
 * Errors of the Docker boundary. Orchestrators branch on `code`, never on dockerode's error shapes,
 * and every message names the container and the action that failed.
 */
export class DockerUnreachableError extends AgentError {
  constructor(action: string, cause?: unknown) {
    super("docker_unreachable", `Docker engine did not answer while trying to ${action}`, {
      hint: "check that dockerd runs and that the agent may use /var/run/docker.sock",
      cause,
    });
  }
}

export class ContainerNotFoundError extends AgentError {
  constructor(container: string, action: string, cause?: unknown) {
    super("container_not_found", `container ${container} no longer exists (while trying to ${action})`, {
      hint: "it was removed while the agent worked on it; `compose up -d` recreates it",
      cause,
    });
  }
}

export class StopTimeoutError extends AgentError {
  constructor(container: string, waitedMs: number) {
    super("stop_timeout", `container ${container} did not stop within ${Math.round(waitedMs / 1000)} s`, {
      hint: "raise the service's stop_grace_period or check what blocks its shutdown",
    });
  }
}

export class DockerTimeoutError extends AgentError {
  constructor(container: string, action: string, waitedMs: number) {
    super(
      "docker_timeout",
      `Docker did not finish ${action} of container ${container} within ${waitedMs} ms`,
    );
  }
}

export class DockerApiError extends AgentError {
  readonly statusCode: number | undefined;
  constructor(
    container: string,
    action: string,
    statusCode: number | undefined,
    detail: string,
    cause?: unknown,
  ) {
    super("docker_failed", `Docker refused to ${action} container ${container}: ${detail}`, { cause });
    this.statusCode = statusCode;
  }
}

export class ComposeFailedError extends AgentError {
  readonly exitCode: number | null;
  readonly output: string;
  constructor(message: string, exitCode: number | null, output: string, hint?: string) {
    super("compose_failed", message, hint === undefined ? {} : { hint });
    this.exitCode = exitCode;
    this.output = output;
  }
}

export class ComposeUnavailableError extends AgentError {
  constructor(detail: string) {
    super(
      "compose_unavailable",
      `neither \`docker compose\` (v2) nor \`docker-compose\` (v1) works: ${detail}`,
      {
        hint: "install the compose v2 plugin (docker-compose-plugin) or docker-compose",
      },
    );
  }
}
