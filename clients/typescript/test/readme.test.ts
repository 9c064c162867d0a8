import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { after, before, test } from "node:test";

import { TestServer } from "./server";

const packageRoot = resolve(__dirname, "../..");

function readmeBlock(heading: string, language: string): string {
  const readme = readFileSync(resolve(packageRoot, "../../README.md"), "utf8");
  const section = readme.split(`\n${heading}\n`)[1];
  assert.ok(section, `README has no ${heading}`);
  const block = section.split("```" + language + "\n")[1];
  assert.ok(block, `README's ${heading} has no ${language} block`);
  return block.split("```")[0];
}

/** Runs tsc, failing with its diagnostics (which it prints on stdout). */
function compile(directory: string, args: string[]): void {
  try {
    execFileSync(join(packageRoot, "node_modules/.bin/tsc"), args, { encoding: "utf8", cwd: directory });
  } catch (error) {
    const { stdout } = error as { stdout?: string };
    assert.fail(`tsc failed:\n${stdout}`);
  }
}

let server: TestServer;

before(async () => {
  server = await TestServer.start();
});

after(async () => {
  await server?.stop();
});

test("the README's TypeScript snippet type-checks and runs as written", () => {
  // Inside the package, so "@socialgraph/client" resolves as it does for a user.
  const directory = mkdtempSync(join(packageRoot, ".readme-"));
  try {
    writeFileSync(join(directory, "main.ts"), readmeBlock("### TypeScript", "ts"));
    compile(directory, [
      "--strict", "--module", "node16", "--moduleResolution", "node16", "--target", "ES2022",
      "--skipLibCheck", "--types", "node", "--rootDir", directory, "--outDir", directory,
      join(directory, "main.ts"),
    ]);
    const output = execFileSync("node", [join(directory, "main.js")], {
      env: { ...process.env, SOCIALGRAPH_ADDRESS: server.address },
      encoding: "utf8",
    });
    assert.equal(output, "true\nINVALID_ARGUMENT INVALID_USER_ID followee_id\n");
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
});
