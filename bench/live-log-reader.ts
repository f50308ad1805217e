// A reader of tinyedge's live request log for bench/proxy.ts, run as a process of its own on the
// CPU wrk uses, so that reading costs the server's CPU nothing: counts the records (lines) it gets
// and the drops it is told of, and prints the counts every 200 ms.
//   node --import tsx bench/live-log-reader.ts URL TOKEN
import { get } from 'node:http';

const [url, token] = process.argv.slice(2);
if (url === undefined || token === undefined) throw new Error('usage: live-log-reader.ts URL TOKEN');
let records = 0;
let dropped = 0;
const NOTICE = '{"dropped":';
get(url, { headers: { authorization: `Bearer ${token}` } }, (res) => {
  if (res.statusCode !== 200) throw new Error(`live log answered ${res.statusCode}`);
  console.log('reading');
  res.on('end', () => process.exit(0));
  res.on('data', (chunk: Buffer) => {
    // Searched as a string: String#indexOf is a fraction of Buffer#indexOf's cost per call, and
    // this process shares wrk's CPU, so what it spends per record lowers the req/s measured.
    const text = chunk.toString('latin1');
    for (let at = text.indexOf('\n'); at >= 0; at = text.indexOf('\n', at + 1)) records++;
    // A notice is a short line of its own; chunks split only rarely one across two.
    for (let at = text.indexOf(NOTICE); at >= 0; at = text.indexOf(NOTICE, at + 1)) {
      records--;
      dropped += parseInt(text.slice(at + NOTICE.length, at + NOTICE.length + 20), 10) || 0;
    }
  });
}).on('error', (err) => {
  console.error(err.message);
  process.exit(1);
});
setInterval(() => console.log(`records ${records} dropped ${dropped}`), 200);
