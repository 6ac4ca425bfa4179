import { describe, expect, it } from "vitest";
import { TEXT_REPLY_BYTES, textReply } from "../../../lambdas/mime/reply.ts";

const lines = (...l: string[]): string => l.join("\n");

describe("textReply: quoted history", () => {
  it.each<[string, string]>([
    [
      "Gmail (en), attribution wrapped over two lines",
      lines(
        "Thanks, that fixed it.",
        "",
        "On Tue, Jul 1, 2003 at 10:52 AM Ann Example <",
        "ann@example.com> wrote:",
        "",
        "> Did you try restarting the service?",
        ">",
        "> Ann",
      ),
    ],
    [
      "Apple Mail (en)",
      lines(
        "Thanks, that fixed it.",
        "",
        "> On 1 Jul 2003, at 10:52, Ann Example <ann@example.com> wrote:",
        ">",
        "> Did you try restarting the service?",
      ),
    ],
    [
      "Thunderbird (de)",
      lines(
        "Thanks, that fixed it.",
        "",
        "Am 01.07.2003 um 10:52 schrieb Ann Example:",
        "> Hast du den Dienst neu gestartet?",
      ),
    ],
    [
      "Gmail (fr), narrow no-break space before the colon",
      lines(
        "Thanks, that fixed it.",
        "",
        "Le mar. 1 juil. 2003 à 10:52, Ann Example <ann@example.com> a écrit\u00a0:",
        "> Avez-vous redémarré le service ?",
      ),
    ],
    [
      "Gmail (es)",
      lines(
        "Thanks, that fixed it.",
        "",
        "El mar, 1 jul 2003 a las 10:52, Ann Example (<ann@example.com>) escribió:",
        "> ¿Reiniciaste el servicio?",
      ),
    ],
    [
      "Gmail (nl)",
      lines(
        "Thanks, that fixed it.",
        "",
        "Op di 1 jul 2003 om 10:52 schreef Ann Example <ann@example.com>:",
        "> Heb je de dienst herstart?",
      ),
    ],
    [
      "Apple Mail (nl)",
      lines(
        "Thanks, that fixed it.",
        "",
        "Op 1 jul. 2003 om 10:52 heeft Ann Example <ann@example.com> het volgende geschreven:",
        "> Heb je de dienst herstart?",
      ),
    ],
    [
      "Gmail (it)",
      lines(
        "Thanks, that fixed it.",
        "",
        "Il giorno mar 1 lug 2003 alle ore 10:52 Ann Example <ann@example.com> ha scritto:",
        "> Hai riavviato il servizio?",
      ),
    ],
    [
      "Gmail (pt)",
      lines(
        "Thanks, that fixed it.",
        "",
        "Em ter., 1 de jul. de 2003 às 10:52, Ann Example <ann@example.com> escreveu:",
        "> Você reiniciou o serviço?",
      ),
    ],
    [
      "Outlook desktop (-----Original Message-----)",
      lines(
        "Thanks, that fixed it.",
        "",
        "-----Original Message-----",
        "From: Ann Example [mailto:ann@example.com]",
        "Sent: Tuesday, July 01, 2003 10:52 AM",
        "To: Support",
        "Subject: RE: service down",
        "",
        "Did you try restarting the service?",
      ),
    ],
    [
      "Outlook (de) -----Ursprüngliche Nachricht-----",
      lines(
        "Thanks, that fixed it.",
        "-----Ursprüngliche Nachricht-----",
        "Von: Ann Example <ann@example.com>",
        "Gesendet: Dienstag, 1. Juli 2003 10:52",
        "",
        "Hast du den Dienst neu gestartet?",
      ),
    ],
    [
      "Outlook 365 header block under a rule",
      lines(
        "Thanks, that fixed it.",
        "",
        "________________________________",
        "From: Ann Example <ann@example.com>",
        "Sent: Tuesday, July 1, 2003 10:52 AM",
        "To: Support <support@example.com>",
        "Subject: Re: service down",
        "",
        "Did you try restarting the service?",
      ),
    ],
    [
      "Outlook header block (de)",
      lines(
        "Thanks, that fixed it.",
        "",
        "Von: Ann Example <ann@example.com>",
        "Gesendet: Dienstag, 1. Juli 2003 10:52",
        "An: Support <support@example.com>",
        "Betreff: AW: Dienst ausgefallen",
        "",
        "Hast du den Dienst neu gestartet?",
      ),
    ],
    [
      "Outlook header block (fr), space before the colons",
      lines(
        "Thanks, that fixed it.",
        "",
        "De : Ann Example <ann@example.com>",
        "Envoyé : mardi 1 juillet 2003 10:52",
        "À : Support <support@example.com>",
        "Objet : RE: service en panne",
        "",
        "Avez-vous redémarré le service ?",
      ),
    ],
    [
      "Outlook header block with To: wrapped before Sent:",
      lines(
        "Thanks, that fixed it.",
        "From: Ann Example <ann@example.com>",
        "To: Support <support@example.com>; Bob <bob@example.com>;",
        "    Carol <carol@example.com>",
        "Date: Tue, 1 Jul 2003 10:52:37 +0200",
        "",
        "Did you try restarting the service?",
      ),
    ],
    [
      "a bare > quote, no attribution",
      lines("Thanks, that fixed it.", "", "> Did you try restarting the service?", "> Ann"),
    ],
    [
      "a -- signature, then the history",
      lines(
        "Thanks, that fixed it.",
        "",
        "-- ",
        "Bob Example | Example Corp",
        "",
        "On Tue, 1 Jul 2003, Ann Example wrote:",
        "> Did you try restarting the service?",
      ),
    ],
    [
      "a mobile sign-off",
      lines(
        "Thanks, that fixed it.",
        "",
        "Sent from my iPhone",
        "",
        "> On 1 Jul 2003, at 10:52, Ann <ann@example.com> wrote:",
        "> Did you try restarting?",
      ),
    ],
    [
      "a CRLF body",
      "Thanks, that fixed it.\r\n\r\nOn Tue, 1 Jul 2003, Ann wrote:\r\n> Restart?\r\n",
    ],
  ])("separates the reply from %s", (_name, body) => {
    expect(textReply(body)).toBe("Thanks, that fixed it.");
  });

  it("keeps a multi-paragraph reply whole, up to the history", () => {
    const body = lines(
      "Hi Ann,",
      "",
      "Restarting helped. The logs said:",
      "  disk full on /var",
      "",
      "Bob",
      "",
      "On Tue, 1 Jul 2003 at 10:52, Ann <ann@example.com> wrote:",
      "> Restart?",
    );
    expect(textReply(body)).toBe(
      lines("Hi Ann,", "", "Restarting helped. The logs said:", "  disk full on /var", "", "Bob"),
    );
  });

  it("takes the reply written below the history (bottom-posting)", () => {
    const body = lines(
      "On Tue, 1 Jul 2003, Ann Example wrote:",
      "> Did you try restarting the service?",
      "",
      "Yes, and that fixed it.",
      "-- ",
      "Bob",
    );
    expect(textReply(body)).toBe("Yes, and that fixed it.");
  });

  it("keeps the quotes of an interleaved reply, dropping only the trailing quote", () => {
    const body = lines(
      "> Did you restart?",
      "Yes.",
      "> And the logs?",
      "Full disk.",
      "> Anything else?",
    );
    expect(textReply(body)).toBe(
      lines("> Did you restart?", "Yes.", "> And the logs?", "Full disk."),
    );
  });

  it("cuts a long reply to 16 KiB of UTF-8 on a character boundary", () => {
    const body = `${"ü".repeat(10_000)}\n\nOn Tue, 1 Jul 2003, Ann wrote:\n> x`;
    const reply = textReply(body) ?? "";
    expect(Buffer.byteLength(reply)).toBe(TEXT_REPLY_BYTES);
    expect(reply).toBe("ü".repeat(TEXT_REPLY_BYTES / 2));
  });
});

describe("textReply: nothing to separate", () => {
  it.each<[string, string]>([
    ["a plain message", lines("Hello,", "", "the service is down.", "", "Ann")],
    ["an empty body", ""],
    [
      "a body that is only history",
      lines("On Tue, 1 Jul 2003, Ann wrote:", "> Did you restart?", "> Ann"),
    ],
    ["only a quote", lines("> quoted", "> more")],
    [
      "prose that mentions someone wrote, mid-line",
      lines("On reflection I think what Ann wrote: is right.", "Bob"),
    ],
    [
      "a From: line that is not an Outlook block",
      lines("From: the team, with thanks.", "", "We fixed the service."),
    ],
  ])("returns undefined for %s", (_name, body) => {
    expect(textReply(body)).toBeUndefined();
  });

  it("finds no history past the first 256 KiB of a huge body", () => {
    const body = `${"a".repeat(300 * 1024)}\n\nOn Tue, 1 Jul 2003, Ann wrote:\n> x`;
    expect(textReply(body)).toBeUndefined();
  });

  it("tests each of 20,000 near-miss attribution lines in a bounded window, finding none", () => {
    // 20,000 lines that almost match the attribution rules: the scan must stay per-line bounded.
    const line = `On ${"x ".repeat(150)}`;
    const body = Array.from({ length: 20_000 }, () => line).join("\n");
    expect(textReply(body)).toBeUndefined();
  });
});
