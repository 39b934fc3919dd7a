import { describe, expect, it } from "vitest";
import { parseResponse } from "../../agent/pve/transport.ts";

const fail = (status: number, statusText: string, body: string) => {
  try {
    parseResponse("GET /x", status, statusText, body);
  } catch (err) {
    return err as Error & { code: string; errors?: Record<string, string> };
  }
  throw new Error("expected an error");
};

describe("pve response parsing", () => {
  it("returns data and the paging total", () => {
    expect(parseResponse("GET /x", 200, "OK", '{"data":[{"n":1,"t":"a"}],"total":1}')).toEqual({
      data: [{ n: 1, t: "a" }],
      total: 1,
    });
  });

  it("prefers the new JSON message over the reason phrase, first line only", () => {
    const err = fail(
      403,
      "Permission check failed",
      '{"data":null,"message":"Permission check failed (/vms/1, VM.Audit)\\n"}',
    );
    expect(err.code).toBe("pve_permission_denied");
    expect(err.message).toBe("GET /x: Permission check failed (/vms/1, VM.Audit)");
  });

  it("falls back to the reason phrase for old hosts, and to the status code without either", () => {
    expect(
      fail(500, "unable to use snapshot name 'vzdump' (reserved name)", '{"data":null}').message,
    ).toContain("unable to use snapshot name 'vzdump' (reserved name)");
    expect(fail(502, "", "").message).toContain("HTTP 502");
  });

  it("keeps the 400 errors map and names a 2xx without data as a bad response", () => {
    const err = fail(
      400,
      "Parameter verification failed.",
      '{"data":null,"errors":{"mode":"value \'x\' does not have a value in the enumeration \'snapshot, suspend, stop\'"}}',
    );
    expect(err.errors).toEqual({
      mode: "value 'x' does not have a value in the enumeration 'snapshot, suspend, stop'",
    });
    expect(fail(200, "OK", "<html>").code).toBe("pve_bad_response");
    expect(fail(404, "Not Found", "").code).toBe("pve_http_error");
  });
});
