// felhom-guest talks to the local Docker socket only. docker-modem requires ssh2 when it loads, for ssh://
// Docker hosts; this stand-in keeps ssh2 (and its native cpu-features/nan) out of the package, and fails
// loudly if an ssh:// host is ever configured.
class Client {
  constructor() {
    throw new Error(
      "felhom-guest ships without ssh2: ssh:// Docker hosts are not supported; use the local socket",
    );
  }
}
module.exports = { Client };
