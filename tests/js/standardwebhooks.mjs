// The Standard Webhooks reference library (npm `standardwebhooks`), as a receiver runs it:
// each case of the JSON file argv[2] ({ secret, id, timestamp, signature, body }) is
// verified; prints a JSON array of "verified" or the library's reason for refusing.
import { readFileSync } from 'node:fs';
import { Webhook } from 'standardwebhooks';

const cases = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const outcomes = cases.map(({ secret, id, timestamp, signature, body }) => {
  try {
    new Webhook(secret).verify(body, {
      'webhook-id': id,
      'webhook-timestamp': String(timestamp),
      'webhook-signature': signature,
    });
    return 'verified';
  } catch (e) {
    return `refused: ${e.message}`;
  }
});
console.log(JSON.stringify(outcomes));
