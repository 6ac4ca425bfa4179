/**
 * The construct in a consumer's app: a bare `new App()` with none of this repository's `cdk.json`
 * feature flags. Regression: the access logs bucket failed synthesis there
 * (`objectOwnership must be "ObjectWriter" when accessControl is "LogDeliveryWrite"`), which only
 * the packed-package test saw, since every other infra test applies cdk.json's context.
 */
import { App, Stack } from "aws-cdk-lib";
import { Match, Template } from "aws-cdk-lib/assertions";
import { it } from "vitest";
import { MailIngestion } from "../../infra/mail-ingestion.ts";

it("synthesizes in an app without our cdk.json flags: access logs by bucket policy, no ACL", () => {
  const stack = new Stack(new App(), "Consumer");
  new MailIngestion(stack, "Mail", {
    mailboxes: [
      { id: "support", host: "pop.example.com", username: "u", password: { secretId: "s" } },
    ],
  });
  const template = Template.fromStack(stack);
  template.resourcePropertiesCountIs("AWS::S3::Bucket", { AccessControl: Match.anyValue() }, 0);
  template.hasResourceProperties("AWS::S3::Bucket", {
    OwnershipControls: { Rules: [{ ObjectOwnership: "BucketOwnerEnforced" }] },
    LoggingConfiguration: Match.absent(),
  });
  template.hasResourceProperties("AWS::S3::BucketPolicy", {
    PolicyDocument: {
      Statement: Match.arrayWith([
        Match.objectLike({
          Action: "s3:PutObject",
          Principal: { Service: "logging.s3.amazonaws.com" },
        }),
      ]),
    },
  });
});
