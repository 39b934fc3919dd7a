// Types of the undici files agent/pve/undici-core.ts imports one by one (undici types only its index).
declare module "undici/lib/dispatcher/pool.js" {
  import type { Pool } from "undici";

  const PoolClass: typeof Pool;
  export default PoolClass;
}
declare module "undici/lib/core/connect.js" {
  import type { buildConnector } from "undici";

  const connect: typeof buildConnector;
  export default connect;
}
declare module "undici/lib/api/api-request.js" {
  import type { Dispatcher } from "undici";

  const apiRequest: (
    this: Dispatcher,
    options: Dispatcher.RequestOptions,
  ) => Promise<Dispatcher.ResponseData>;
  export default apiRequest;
}
