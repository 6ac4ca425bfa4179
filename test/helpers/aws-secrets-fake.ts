/**
 * Secrets Manager and SSM Parameter Store over real HTTP for the real AWS SDK clients: a loopback
 * server speaking their JSON 1.1 protocol (`X-Amz-Target`) for the few operations mail-ingest
 * uses. fauxqs serves S3 and SQS only, so this stands in for the two secret stores; requests are
 * signed by the SDK as usual, and the fake ignores the signature.
 */
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { SSMClient } from "@aws-sdk/client-ssm";

export interface AwsCall {
  readonly target: string;
  readonly input: Record<string, unknown>;
}

export interface AwsSecretsFake {
  /** Current values by secret id / parameter name. */
  readonly secrets: Map<string, string>;
  readonly parameters: Map<string, { value: string; type: string; version: number }>;
  readonly calls: AwsCall[];
  /** The next N writes (PutSecretValue / PutParameter / CreateSecret) answer ThrottlingException. */
  failWrites: number;
  secretsManager(): SecretsManagerClient;
  ssm(): SSMClient;
  /** Region, endpoint and credentials for a CLI child process. */
  readonly env: Record<string, string>;
  close(): Promise<void>;
}

export async function startAwsSecretsFake(): Promise<AwsSecretsFake> {
  const secrets = new Map<string, string>();
  const parameters = new Map<string, { value: string; type: string; version: number }>();
  const calls: AwsCall[] = [];
  const state = { failWrites: 0 };
  let versions = 0;

  const answer = (target: string, input: Record<string, unknown>): [number, unknown] => {
    const op = target.split(".")[1] ?? "";
    const name = String(input.SecretId ?? input.Name ?? "");
    if (/^(PutSecretValue|PutParameter|CreateSecret)$/.test(op) && state.failWrites > 0) {
      state.failWrites -= 1;
      return [400, { __type: "ThrottlingException", message: "Rate exceeded" }];
    }
    const notFound = (type: string) =>
      [400, { __type: type, message: `${name} not found` }] as [number, unknown];
    switch (op) {
      case "GetSecretValue": {
        const value = secrets.get(name);
        if (value === undefined) return notFound("ResourceNotFoundException");
        versions += 1;
        return [
          200,
          {
            Name: name,
            ARN: `arn:aws:secretsmanager:us-east-1:000000000000:secret:${name}`,
            SecretString: value,
            VersionId: `v${versions}`,
            CreatedDate: Date.now() / 1000,
          },
        ];
      }
      case "PutSecretValue": {
        if (!secrets.has(name)) return notFound("ResourceNotFoundException");
        secrets.set(name, String(input.SecretString));
        versions += 1;
        return [200, { Name: name, VersionId: `v${versions}` }];
      }
      case "CreateSecret": {
        if (secrets.has(name))
          return [400, { __type: "ResourceExistsException", message: "exists" }];
        secrets.set(name, String(input.SecretString));
        return [
          200,
          { Name: name, ARN: `arn:aws:secretsmanager:us-east-1:000000000000:secret:${name}` },
        ];
      }
      case "GetParameter": {
        const parameter = parameters.get(name);
        if (!parameter) return notFound("ParameterNotFound");
        // A SecureString read without WithDecryption comes back encrypted, as in AWS.
        const value =
          parameter.type === "SecureString" && input.WithDecryption !== true
            ? "AQICAHencrypted"
            : parameter.value;
        return [
          200,
          {
            Parameter: {
              Name: name,
              Type: parameter.type,
              Value: value,
              Version: parameter.version,
            },
          },
        ];
      }
      case "PutParameter": {
        const existing = parameters.get(name);
        if (existing && input.Overwrite !== true)
          return [400, { __type: "ParameterAlreadyExists", message: "exists" }];
        const version = (existing?.version ?? 0) + 1;
        parameters.set(name, {
          value: String(input.Value),
          type: String(input.Type ?? existing?.type ?? "String"),
          version,
        });
        return [200, { Version: version, Tier: "Standard" }];
      }
      default:
        return [400, { __type: "UnknownOperationException", message: target }];
    }
  };

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const target = String(req.headers["x-amz-target"] ?? "");
      const input = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}") as Record<
        string,
        unknown
      >;
      calls.push({ target, input });
      const [status, body] = answer(target, input);
      res.writeHead(status, { "content-type": "application/x-amz-json-1.1" });
      res.end(JSON.stringify(body));
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const base = {
    region: "us-east-1",
    endpoint,
    credentials: { accessKeyId: "test", secretAccessKey: "test" },
    maxAttempts: 1,
  };
  return {
    secrets,
    parameters,
    calls,
    get failWrites() {
      return state.failWrites;
    },
    set failWrites(n: number) {
      state.failWrites = n;
    },
    secretsManager: () => new SecretsManagerClient(base),
    ssm: () => new SSMClient(base),
    env: {
      AWS_REGION: "us-east-1",
      AWS_ACCESS_KEY_ID: "test",
      AWS_SECRET_ACCESS_KEY: "test",
      AWS_MAX_ATTEMPTS: "1",
      AWS_ENDPOINT_URL: endpoint,
    },
    close: async () => {
      server.closeAllConnections();
      server.close();
      await once(server, "close");
    },
  };
}
