// Writes the package's debian/copyright (machine-readable format 1.0) to stdout: the agent's own notice, and
// the npm packages bundled into its code (packaging/bundle.mjs), with their licences as each package's own
// licence file states them. The bundle is one set of files holding code under several licences, so one Files
// paragraph names it with every package's notice, and one stand-alone License paragraph per licence holds
// each package's licence file verbatim (lintian: a Files pattern may appear only once).
//
//   node packaging/copyright.mjs PACKAGES_JSON VERSION_YEAR
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

const [packagesJson, year] = process.argv.slice(2);
/** [{name, version, dir}] as bundle.mjs lists them; `dir` relative to the repository. */
const bundled = JSON.parse(readFileSync(packagesJson, "utf8"));
const root = join(import.meta.dirname, "..");

/** Licences Debian ships in /usr/share/common-licenses: referred to, not copied (lintian asks for that). */
const COMMON = { "Apache-2.0": "Apache-2.0" };

/** For a package that ships no licence file of its own: the licence's standard text. */
const TEMPLATES = {
  ISC: `Permission to use, copy, modify, and/or distribute this software for any purpose with or without fee
is hereby granted, provided that the above copyright notice and this permission notice appear in all
copies.

THE SOFTWARE IS PROVIDED "AS IS" AND THE AUTHOR DISCLAIMS ALL WARRANTIES WITH REGARD TO THIS SOFTWARE
INCLUDING ALL IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS. IN NO EVENT SHALL THE AUTHOR BE LIABLE
FOR ANY SPECIAL, DIRECT, INDIRECT, OR CONSEQUENTIAL DAMAGES OR ANY DAMAGES WHATSOEVER RESULTING FROM LOSS
OF USE, DATA OR PROFITS, WHETHER IN AN ACTION OF CONTRACT, NEGLIGENCE OR OTHER TORTIOUS ACTION, ARISING
OUT OF OR IN CONNECTION WITH THE USE OR PERFORMANCE OF THIS SOFTWARE.`,
};

/**
 * A copyright notice, not licence prose that happens to start with the word: "Copyright (c) 2014 …",
 * "Copyright 2020 …", "© …", "(c) 2018 …", "Copyright Joyent, Inc." — but not "copyright license to
 * reproduce", Apache's "(c) You must retain" or its appendix's "Copyright [yyyy]".
 */
function isNotice(line) {
  return /^(©|\(c\)\s*\d|copyright\s*(\(c\)|©|\d))/i.test(line) || /^Copyright [A-Z]/.test(line);
}

/** DEP-5 continuation lines: one leading space, an empty line as " .". */
const indent = (text) =>
  text
    .replace(/\r/g, "")
    .replace(/\t/g, "    ")
    .trim()
    .split("\n")
    .map((l) => (l.trim() === "" ? " ." : ` ${l.trimEnd()}`))
    .join("\n");

function licenceOf({ dir, pkg }) {
  const raw = pkg.license ?? pkg.licenses?.[0]?.type ?? pkg.licenses?.[0];
  const name = typeof raw === "string" ? raw : raw?.type;
  if (!name) throw new Error(`${pkg.name}: package.json names no licence`);
  const file = readdirSync(dir).find((f) => /^(licen[cs]e|copying)/i.test(f));
  const text = file ? readFileSync(join(dir, file), "utf8") : undefined;
  const author = typeof pkg.author === "string" ? pkg.author : pkg.author?.name;
  const notices = (text ?? "")
    .split("\n")
    .map((l) => l.trim().replace(/^[*#]+\s*/, ""))
    .filter(isNotice)
    .map((l) => l.replace(/^copyright\s*(\(c\)|©)?\s*/i, "").replace(/^\(c\)\s*/i, ""));
  const copyright = notices.length ? [...new Set(notices)] : [author ?? `the authors of ${pkg.name}`];
  // Referred to, not copied; but a file that holds more than that licence (@balena/dockerignore's carries the
  // MIT licence of the code it took from Zeit) ships verbatim around it, the Apache text replaced by the
  // reference (lintian: copyright-file-contains-full-apache-2-license).
  if (COMMON[name]) {
    const reference = `On Debian systems, the full text of the ${name} licence is in /usr/share/common-licenses/${COMMON[name]}.`;
    const apache = text
      ? /^\s*Apache License\s*$[\s\S]*?^\s*END OF TERMS AND CONDITIONS\s*$(?:\s*APPENDIX:[\s\S]*?limitations under the License\.)?/m.exec(
          text,
        )
      : null;
    const around = apache && text ? text.replace(apache[0], `[${reference}]`) : undefined;
    return { name, copyright, body: around && around.trim() !== `[${reference}]` ? around : reference };
  }
  const body = text ?? TEMPLATES[name];
  if (!body) throw new Error(`${pkg.name}: no licence file and no standard text for ${name}`);
  return { name, copyright, body };
}

const packages = bundled
  // The agent's own stand-ins (packaging/no-ssh2) are Felhom's code, under "Files: *".
  .filter((p) => !p.name.startsWith("felhom-guest-") && !p.name.startsWith("@felhom/"))
  .map((p) => {
    const dir = join(root, p.dir);
    const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
    const { name: licence, copyright, body } = licenceOf({ dir, pkg });
    return { key: `${pkg.name}@${pkg.version}`, licence, copyright, body: body.replace(/\r/g, "").trim() };
  });
const licences = [...new Set(packages.map((p) => p.licence))].sort();

const paragraphs = [
  [
    "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/",
    "Upstream-Name: felhom-guest",
    "Upstream-Contact: Felhom <ops@felhom.invalid>",
  ].join("\n"),
  ["Files: *", `Copyright: ${year} Felhom`, "License: proprietary"].join("\n"),
  [
    "Files: usr/lib/felhom-guest/main.js usr/lib/felhom-guest/chunks/*",
    `Copyright: ${year} Felhom`,
    ...[...new Set(packages.flatMap((p) => p.copyright))].map((c) => ` ${c}`),
    `License: proprietary and ${licences.join(" and ")}`,
    "Comment: The agent's code, bundled with these npm packages (name@version, licence):",
    ...packages.map((p) => ` ${p.key} (${p.licence})`),
  ].join("\n"),
];
paragraphs.push(
  [
    "License: proprietary",
    indent(
      "All rights reserved. This package is distributed by Felhom to the operators of the guests it runs in;\nit may not be redistributed. The npm packages bundled into its code are under their own licences, below.",
    ),
  ].join("\n"),
);
for (const licence of licences) {
  // Each text once, headed by the packages whose licence file it is.
  const byText = new Map();
  for (const p of packages.filter((q) => q.licence === licence))
    byText.set(p.body, [...(byText.get(p.body) ?? []), p]);
  const texts = [...byText].map(([body, ps]) => `${ps.map((p) => p.key).join(", ")}:\n\n${body}`);
  paragraphs.push([`License: ${licence}`, indent(texts.join("\n\n"))].join("\n"));
}
process.stdout.write(`${paragraphs.join("\n\n")}\n`);
