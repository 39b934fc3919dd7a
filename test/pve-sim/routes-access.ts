import { splitTokenId } from "./access-model.ts";
import type { Route } from "./api-server.ts";
import { formats, stdProps } from "./schema.ts";
import type { PveSimulator } from "./simulator.ts";
import { certificateInfo } from "./tls.ts";

/** /version, /access/permissions, /access/password (ticket only), /nodes/{node}/certificates/info. */
export function accessRoutes(sim: PveSimulator): Route[] {
  return [
    {
      method: "GET",
      path: "/version",
      schema: {},
      handler: () => ({ ...sim.opts.version }),
    },
    {
      method: "GET",
      path: "/access/permissions",
      schema: {
        userid: { type: "string", optional: true, format: formats.userOrTokenId },
        path: { type: "string", optional: true, maxLength: 64 },
      },
      handler: ({ user, params }) => {
        let target = user;
        if (typeof params.userid === "string" && params.userid !== user) {
          const ownToken = splitTokenId(params.userid)?.userid === user;
          if (!ownToken) sim.access.check(user, "/access", ["Sys.Audit"]);
          target = params.userid;
        }
        if (typeof params.path === "string")
          return { [params.path]: sim.access.permissions(target, params.path) };
        return sim.access.effectivePermissions(target);
      },
    },
    {
      method: "PUT",
      path: "/access/password",
      noToken: true,
      schema: {
        userid: { type: "string" },
        password: { type: "string" },
        "confirmation-password": { type: "string", optional: true },
      },
      handler: () => null,
    },
    {
      method: "GET",
      path: "/nodes/{node}/certificates/info",
      schema: { node: stdProps.node },
      handler: ({ params }) => {
        sim.assertNode(String(params.node));
        return [certificateInfo("pve-root-ca.pem", sim.caPem), certificateInfo("pve-ssl.pem", sim.certPem)];
      },
    },
  ];
}
