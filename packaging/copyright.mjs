// Writes the package's debian/copyright (machine-readable format 1.0) to stdout: the agent's own notice,
// then one paragraph per npm package shipped under /usr/lib/felhom-guest/node_modules, with its licence
// as the package's own licence file states it. Run by build-deb.sh after `npm ci`, before the licence
// files are pruned from node_modules (the texts live on here, once, where Debian looks for them).
//
//   node packaging/copyright.mjs LIB_DIR VERSION_YEAR
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

const [lib, year] = process.argv.slice(2);
const modules = join(lib, "node_modules");

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

function packages(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    if (name.startsWith(".")) continue;
    if (name.startsWith("@")) {
      for (const sub of readdirSync(join(dir, name)).sort()) out.push(...packageAt(join(dir, name, sub)));
    } else out.push(...packageAt(join(dir, name)));
  }
  return out;
}

function packageAt(dir) {
  const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
  let nested = [];
  try {
    nested = packages(join(dir, "node_modules"));
  } catch {}
  return [{ dir, pkg }, ...nested];
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
  // The Apache licence's text is the licence alone ("(c) You must retain…" is its clause, not a notice).
  const notices = (COMMON[name] ? "" : (text ?? ""))
    .split("\n")
    .map((l) => l.trim())
    // A notice, not licence prose that happens to start with the word ("copyright license to reproduce").
    .filter((l) => /^(\(c\)|©|copyright\s*(\(c\)|©|\d))/i.test(l))
    .map((l) => l.replace(/^copyright\s*(\(c\)|©)?\s*/i, "").replace(/^\(c\)\s*/i, ""));
  const copyright = notices.length ? notices : [author ?? `the authors of ${pkg.name}`];
  if (COMMON[name]) {
    return {
      name,
      copyright,
      body: `On Debian systems, the full text of the ${name} licence is in /usr/share/common-licenses/${COMMON[name]}.`,
    };
  }
  const body = text ?? TEMPLATES[name];
  if (!body) throw new Error(`${pkg.name}: no licence file and no standard text for ${name}`);
  return { name, copyright, body };
}

const paragraphs = [
  [
    "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/",
    "Upstream-Name: felhom-guest",
    "Upstream-Contact: Felhom <ops@felhom.invalid>",
  ].join("\n"),
  [
    "Files: *",
    `Copyright: ${year} Felhom`,
    "License: proprietary",
    indent(
      "All rights reserved. This package is distributed by Felhom to the operators of the guests it runs in;\nit may not be redistributed. The npm packages it ships are under their own licences, listed below.",
    ),
  ].join("\n"),
];
const seen = new Set();
for (const p of packages(modules)) {
  const key = `${p.pkg.name}@${p.pkg.version}`;
  if (seen.has(key)) continue;
  seen.add(key);
  // The agent's own stand-ins (packaging/no-ssh2, installed as ssh2) and its protocol package (a link to
  // ../../protocol): Felhom's code, under "Files: *".
  if (p.pkg.name.startsWith("felhom-guest-") || p.pkg.name.startsWith("@felhom/")) continue;
  const l = licenceOf(p);
  const rel = p.dir.slice(lib.length).replace(/^\/+/, "");
  paragraphs.push(
    [
      `Files: usr/lib/felhom-guest/${rel}/*`,
      `Comment: ${key}`,
      `Copyright: ${l.copyright.join("\n ")}`,
      `License: ${l.name}`,
      indent(l.body),
    ].join("\n"),
  );
}
process.stdout.write(`${paragraphs.join("\n\n")}\n`);
