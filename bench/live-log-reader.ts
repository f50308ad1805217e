// A reader of tinyedge's live request log for bench/proxy.ts, run as a process of its own on the
// CPU wrk uses, so that reading costs the server's CPU nothing: counts the records (lines) it gets
// and the drops it is told of, and prints the counts every 200 ms.
//   node --import tsx bench/live-log-reader.ts URL TOKEN
import { get } from 'node:http';

const [url, token] = process.argv.slice(2);
if (url === undefined || token === undefined) throw new Error('usage: live-log-reader.ts URL TOKEN');
let records = 0;
let dropped = 0;
const NOTICE = Buffer.from('{"dropped":');
get(url, { headers: { authorization: `Bearer ${token}` } }, (res) => {
  if (res.statusCode !== 200) throw new Error(`live log answered ${res.statusCode}`);
  console.log('reading');
  res.on('end', () => process.exit(0));
  res.on('data', (chunk: Buffer) => {
    for (let at = chunk.indexOf(10); at >= 0; at = chunk.indexOf(10, at + 1)) records++;
    // A notice is a short line of its own; chunks split only rarely one across two.
    for (let at = chunk.indexOf(NOTICE); at >= 0; at = chunk.indexOf(NOTICE, at + 1)) {
      records--;
      dropped += parseInt(chunk.subarray(at + NOTICE.length, at + NOTICE.length + 20).toString('latin1'), 10) || 0;
    }
  });
}).on('error', (err) => {
  console.error(err.message);
  process.exit(1);
});
setInterval(() => console.log(`records ${records} dropped ${dropped}`), 200);
