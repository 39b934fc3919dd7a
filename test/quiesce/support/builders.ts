import type { ContainerDetails } from "../../../agent/docker/docker-engine.ts";
import { groupStacks, type StackFacts } from "../../../agent/quiesce/stack-facts.ts";

/** A compose container as DockerEngine.inspect returns it, for tests of the pure modules. */
export function container(
  project: string,
  service: string,
  overrides: Partial<ContainerDetails> & { number?: number; dependsOn?: string } = {},
): ContainerDetails {
  const { number = 1, dependsOn, labels = {}, ...rest } = overrides;
  return {
    id: `${project}-${service}-${number}-id`,
    name: `${project}_${service}_${number}`,
    image: "local/busybox:1.35",
    imageId: "sha256:busybox",
    state: "running",
    restartPolicy: "unless-stopped",
    stopSignal: undefined,
    stopTimeoutS: undefined,
    hasHealthcheck: false,
    health: undefined,
    mounts: [],
    ...rest,
    labels: {
      "com.docker.compose.project": project,
      "com.docker.compose.service": service,
      "com.docker.compose.container-number": String(number),
      "com.docker.compose.oneoff": "False",
      "com.docker.compose.project.working_dir": `/srv/${project}`,
      "com.docker.compose.project.config_files": `/srv/${project}/compose.yaml`,
      "com.docker.compose.version": "2.29.1",
      ...(dependsOn === undefined ? {} : { "com.docker.compose.depends_on": dependsOn }),
      ...labels,
    },
  };
}

/** Stacks whose edges come from v2 labels; containers without the label read as a compose file with no edges. */
export function stacksOf(...containers: ContainerDetails[]): StackFacts[] {
  return groupStacks(containers, () => new Map());
}
