import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

import { ChannelCredentials, connect } from "../src";

/**
 * A `socialgraph serve` process for the tests: a SQLite file in a temporary
 * directory, a free port, and a limit of three connection requests per hour
 * so a refusal is reachable. SOCIALGRAPH_SERVER names the command.
 */
export class TestServer {
  private logs = "";

  private constructor(
    readonly address: string,
    private readonly process: ChildProcess,
    private readonly directory: string,
  ) {
    process.stdout?.on("data", (chunk) => (this.logs += chunk));
    process.stderr?.on("data", (chunk) => (this.logs += chunk));
  }

  static async start(): Promise<TestServer> {
    const command = process.env.SOCIALGRAPH_SERVER ?? resolve(__dirname, "../../../../.venv/bin/socialgraph");
    const directory = mkdtempSync(join(tmpdir(), "socialgraph-ts-client-"));
    const address = `127.0.0.1:${await freePort()}`;
    const child = spawn(command, [
      "serve",
      "--listen", address,
      "--database-url", `sqlite:///${join(directory, "graph.db")}`,
      "--rate-limits", "3/1h",
    ]);
    const server = new TestServer(address, child, directory);
    await server.waitServing(30_000);
    return server;
  }

  private async waitServing(timeoutMs: number): Promise<void> {
    const client = connect(this.address, ChannelCredentials.createInsecure());
    const until = Date.now() + timeoutMs;
    try {
      for (;;) {
        try {
          await client.graph.getCounts({ userIds: ["00000000-0000-4000-8000-000000000000"] }, { deadline: 1000 });
          return;
        } catch (error) {
          if (Date.now() > until || this.process.exitCode !== null) {
            throw new Error(`server did not start: ${error}\n${this.logs}`);
          }
          await new Promise((done) => setTimeout(done, 100));
        }
      }
    } finally {
      client.close();
    }
  }

  async stop(): Promise<void> {
    if (this.process.exitCode === null) {
      const exited = new Promise((done) => this.process.once("exit", done));
      this.process.kill("SIGTERM");
      await exited;
    }
    rmSync(this.directory, { recursive: true, force: true });
  }
}

function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const probe = createServer();
    probe.once("error", fail);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      probe.close(() => done(typeof address === "object" && address !== null ? address.port : 0));
    });
  });
}
