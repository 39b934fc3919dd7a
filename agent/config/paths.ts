/** Where the installed package keeps things (packaging/build-deb.sh): named in defaults and in hints. */
export const DEFAULT_CONFIG_PATH = "/etc/felhom-guest/agent.yaml";
/** The commented example of every key, as the package installs it (Debian: examples under /usr/share/doc). */
export const EXAMPLE_CONFIG_PATH = "/usr/share/doc/felhom-guest/examples/agent.yaml";
/** The documentation the package installs (README.md and docs/*.md). */
export const DOC_DIR = "/usr/share/doc/felhom-guest";
