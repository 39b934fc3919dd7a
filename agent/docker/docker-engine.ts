import { PassThrough } from "node:stream";
import Docker from "dockerode";
import { commandForReport } from "../lib/report-text.ts";
import {
  ContainerNotFoundError,
  DockerApiError,
  DockerTimeoutError,
  DockerUnreachableError,
  StopTimeoutError,
} from "./errors.ts";
import { TailBuffer } from "./tail-buffer.ts";

/**
 * The only module that imports dockerode. Everything above it sees plain data and AgentErrors whose
 * messages name the container and the action; dockerode's error shapes never escape.
 */

export type ContainerState = "created" | "running" | "paused" | "restarting" | "removing" | "exited" | "dead";

export interface ContainerSummary {
  id: string;
  name: string;
  image: string;
  state: ContainerState;
  labels: Record<string, string>;
}

export interface ContainerMount {
  type: string;
  /** Volume name for named volumes. */
  name: string | undefined;
  source: string;
  destination: string;
  /** A volume's driver (`local` unless a plugin's). */
  driver?: string | undefined;
  /** false for a read-only mount. */
  rw?: boolean | undefined;
}

export interface ContainerDetails extends ContainerSummary {
  /** The image the container was created from (sha256:…), whatever its tag points at now. */
  imageId: string;
  /**
   * The felhom.quiesce* labels the container inherited from its image, taken out of `labels` by
   * discoverStacks (agent/quiesce/image-labels.ts): only labels set for the container count.
   */
  labelsFromImage?: Record<string, string>;
  /** "no" when the container has no restart policy. */
  restartPolicy: string;
  stopSignal: string | undefined;
  /** The container's own grace period (compose `stop_grace_period`); undefined means Docker's 10 s. */
  stopTimeoutS: number | undefined;
  hasHealthcheck: boolean;
  health: "starting" | "healthy" | "unhealthy" | undefined;
  mounts: ContainerMount[];
}

export interface ExecOptions {
  timeoutMs: number;
  /** Output beyond this is dropped from the front: the tail is what explains a failure. */
  maxOutputBytes: number;
}

export interface ExecResult {
  /** null when the command did not finish within the timeout. */
  exitCode: number | null;
  timedOut: boolean;
  output: string;
  truncated: boolean;
}

/** Slack on top of a stop's grace period for the engine to kill and reap the process. */
const STOP_SLACK_MS = 15_000;
/** Calls that should return at once (inspect, start, pause…) still get a bound: a hung engine must not hang a resume. */
const CALL_TIMEOUT_MS = 60_000;

export class DockerEngine {
  private readonly docker: Docker;
  /** docker.socket from the config; undefined: the default socket (or DOCKER_HOST). */
  readonly socketPath: string | undefined;

  constructor(options: { socketPath?: string } = {}) {
    this.socketPath = options.socketPath;
    this.docker = new Docker(options.socketPath === undefined ? {} : { socketPath: options.socketPath });
  }

  /** Does the engine answer? (The sandbox and `doctor` ask before anything else.) */
  async ping(): Promise<void> {
    await this.call("engine", "ping", 10_000, () => this.docker.ping());
  }

  /** Every container that carries a compose project label (or one of `projects`), running or not. */
  async listComposeContainers(projects?: string[]): Promise<ContainerSummary[]> {
    const filters =
      projects === undefined
        ? [["com.docker.compose.project"]]
        : projects.map((p) => [`com.docker.compose.project=${p}`]);
    const lists = await Promise.all(
      filters.map((label) =>
        this.call("engine", "list containers", CALL_TIMEOUT_MS, () =>
          this.docker.listContainers({ all: true, filters: { label } }),
        ),
      ),
    );
    const list = lists.flat();
    return list.map((c) => ({
      id: c.Id,
      name: (c.Names[0] ?? c.Id).replace(/^\//, ""),
      image: c.Image,
      state: c.State as ContainerState,
      labels: c.Labels ?? {},
    }));
  }

  async inspect(id: string): Promise<ContainerDetails> {
    const info = await this.call(id, "inspect", CALL_TIMEOUT_MS, () =>
      this.docker.getContainer(id).inspect(),
    );
    const state = info.State;
    const hc = info.Config.Healthcheck;
    // @types/dockerode lacks these two; the engine sends them when set.
    const config = info.Config as typeof info.Config & { StopTimeout?: number; StopSignal?: string };
    return {
      id: info.Id,
      name: info.Name.replace(/^\//, ""),
      image: info.Config.Image,
      imageId: info.Image,
      state: (state.Paused ? "paused" : state.Status) as ContainerState,
      labels: info.Config.Labels ?? {},
      restartPolicy: info.HostConfig.RestartPolicy?.Name || "no",
      stopSignal: config.StopSignal || undefined,
      stopTimeoutS: config.StopTimeout ?? undefined,
      hasHealthcheck: hc?.Test !== undefined && hc.Test.length > 0 && hc.Test[0] !== "NONE",
      health: (state.Health?.Status as ContainerDetails["health"]) || undefined,
      mounts: (info.Mounts ?? []).map((m) => ({
        type: m.Type,
        name: m.Name,
        source: m.Source,
        destination: m.Destination,
        driver: m.Driver || undefined,
        rw: m.RW,
      })),
    };
  }

  /**
   * Docker sends the container's own StopSignal, waits `graceS`, then SIGKILLs; the call returns once
   * the container is down. Already stopped (304) is not an error.
   */
  async stop(id: string, name: string, graceS: number): Promise<void> {
    const waitMs = graceS * 1000 + STOP_SLACK_MS;
    try {
      await this.call(name, "stop", waitMs, () => this.docker.getContainer(id).stop({ t: graceS }), true);
    } catch (err) {
      if (err instanceof DockerTimeoutError) throw new StopTimeoutError(name, waitMs);
      throw err;
    }
  }

  async start(id: string, name: string): Promise<void> {
    await this.call(name, "start", CALL_TIMEOUT_MS, () => this.docker.getContainer(id).start(), true);
  }

  async pause(id: string, name: string): Promise<void> {
    await this.call(name, "pause", CALL_TIMEOUT_MS, () => this.docker.getContainer(id).pause());
  }

  async unpause(id: string, name: string): Promise<void> {
    await this.call(name, "unpause", CALL_TIMEOUT_MS, () => this.docker.getContainer(id).unpause());
  }

  /**
   * Runs `cmd` inside the container (argv, no shell unless the caller asks for one). The engine has no
   * way to kill an exec, so on timeout the command is abandoned and may still be running in there.
   */
  async exec(id: string, name: string, cmd: string[], options: ExecOptions): Promise<ExecResult> {
    const container = this.docker.getContainer(id);
    const exec = await this.call(name, `create exec ${commandForReport(cmd)} in`, CALL_TIMEOUT_MS, () =>
      container.exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true, Tty: false }),
    );
    const stream = await this.call(name, "start exec in", CALL_TIMEOUT_MS, () =>
      exec.start({ hijack: true, stdin: false }),
    );
    const tail = new TailBuffer(options.maxOutputBytes);
    const sink = new PassThrough();
    sink.on("data", (chunk: Buffer) => tail.push(chunk));
    this.docker.modem.demuxStream(stream, sink, sink);
    let timer: NodeJS.Timeout | undefined;
    const ended = new Promise<"ended">((resolve, reject) => {
      stream.on("end", () => resolve("ended"));
      stream.on("close", () => resolve("ended"));
      stream.on("error", reject);
    });
    const timedOut = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), options.timeoutMs);
    });
    let outcome: "ended" | "timeout";
    try {
      outcome = await Promise.race([ended, timedOut]);
    } catch (err) {
      throw translate(err, name, "run a command in");
    } finally {
      clearTimeout(timer);
    }
    if (outcome === "timeout") {
      stream.destroy();
      return { exitCode: null, timedOut: true, output: tail.toString(), truncated: tail.truncated };
    }
    const info = await this.call(name, "read the exit code of a command in", CALL_TIMEOUT_MS, () =>
      exec.inspect(),
    );
    return {
      exitCode: info.ExitCode ?? null,
      timedOut: false,
      output: tail.toString(),
      truncated: tail.truncated,
    };
  }

  /** The labels baked into an image (its Config.Labels). */
  async imageLabels(imageId: string): Promise<Record<string, string>> {
    const info = await this.call(imageId, "inspect image", CALL_TIMEOUT_MS, () =>
      this.docker.getImage(imageId).inspect(),
    );
    return info.Config?.Labels ?? {};
  }

  /**
   * Sizes of named volumes from /system/df. The engine walks every volume for this, so callers ask only
   * when they want the warning, not on every backup.
   */
  async volumeSizes(): Promise<Map<string, number>> {
    const df = (await this.call("engine", "read disk usage", CALL_TIMEOUT_MS * 5, () =>
      this.docker.df(),
    )) as {
      Volumes?: { Name: string; UsageData?: { Size: number } }[];
    };
    const sizes = new Map<string, number>();
    for (const v of df.Volumes ?? []) {
      if (v.UsageData && v.UsageData.Size >= 0) sizes.set(v.Name, v.UsageData.Size);
    }
    return sizes;
  }

  /** `docker volume inspect`: the driver and its options (`type`, `o`, `device` for `local`). */
  async volume(name: string): Promise<{ driver: string; options: Record<string, string> }> {
    const v = await this.call(`volume ${name}`, "inspect", CALL_TIMEOUT_MS, () =>
      this.docker.getVolume(name).inspect(),
    );
    return { driver: v.Driver, options: v.Options ?? {} };
  }

  private async call<T>(
    container: string,
    action: string,
    timeoutMs: number,
    fn: () => Promise<T>,
    notModifiedIsOk = false,
  ): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new DockerTimeoutError(container, action, timeoutMs)), timeoutMs);
    });
    try {
      return await Promise.race([fn(), timeout]);
    } catch (err) {
      if (notModifiedIsOk && statusOf(err) === 304) return undefined as T;
      throw translate(err, container, action);
    } finally {
      clearTimeout(timer);
    }
  }
}

function statusOf(err: unknown): number | undefined {
  const status = (err as { statusCode?: unknown } | null)?.statusCode;
  return typeof status === "number" ? status : undefined;
}

/** dockerode rejects with HTTP-ish errors (statusCode, json.message) or raw socket errors (code). */
function translate(err: unknown, container: string, action: string): Error {
  if (err instanceof DockerTimeoutError) return err;
  const status = statusOf(err);
  if (status === 404) return new ContainerNotFoundError(container, action, err);
  if (status === undefined) {
    const code = (err as { code?: unknown } | null)?.code;
    if (
      typeof code === "string" &&
      /^(ECONNREFUSED|ENOENT|ECONNRESET|EPIPE|EACCES|ETIMEDOUT|EHOSTUNREACH)$/.test(code)
    ) {
      return new DockerUnreachableError(`${action} ${container}`, err);
    }
    if (err instanceof Error && /socket hang up/i.test(err.message)) {
      return new DockerUnreachableError(`${action} ${container}`, err);
    }
  }
  const json = (err as { json?: { message?: unknown } } | null)?.json;
  const detail =
    typeof json?.message === "string" ? json.message : err instanceof Error ? err.message : String(err);
  return new DockerApiError(container, action, status, detail, err);
}
