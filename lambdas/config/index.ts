/** The config module: schema and validation, loaders, and the Lambda environment contract. */
export * from "./env.ts";
export * from "./loaders.ts";
export * from "./schema.ts";
