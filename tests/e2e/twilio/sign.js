#!/usr/bin/env node
// Signs a Twilio webhook request the way Twilio does, with the official
// `twilio` npm package, so that a third party's code checks retain's
// validation (tests/unit/test_ingest_twilio_npm.c runs it).
//
//   node sign.js AUTH_TOKEN URL FORM_BODY
//
// FORM_BODY is the application/x-www-form-urlencoded body as it is posted.
// It is decoded the way an Express app receives it (a name sent several
// times becomes an array), then twilio.getExpectedTwilioSignature computes
// the X-Twilio-Signature, which is printed on one line. As a self-check,
// twilio.validateRequest must accept it, or the exit status is 1.
"use strict";

const twilio = require("twilio");

function usage() {
  process.stderr.write("usage: node sign.js AUTH_TOKEN URL FORM_BODY\n");
  process.exit(2);
}

const [token, url, body] = process.argv.slice(2);
if (token === undefined || url === undefined || body === undefined) {
  usage();
}

const params = {};
for (const [name, value] of new URLSearchParams(body)) {
  if (Object.prototype.hasOwnProperty.call(params, name)) {
    params[name] = [].concat(params[name], value);
  } else {
    params[name] = value;
  }
}

const signature = twilio.getExpectedTwilioSignature(token, url, params);
if (!twilio.validateRequest(token, signature, url, params)) {
  process.stderr.write("sign.js: validateRequest rejects its own signature\n");
  process.exit(1);
}
process.stdout.write(signature + "\n");
