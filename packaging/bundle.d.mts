/** packaging/bundle.mjs: the agent as the package ships it; returns the npm packages the bundle holds. */
export function bundleAgent(
  outdir: string,
  options?: { sourcemap?: boolean },
): Promise<{ name: string; version: string; dir: string }[]>;
