// TCP echo server for the test headend's lan namespace: every byte a client sends comes back
// unchanged, so a test can prove a TCP path through the tunnel in both directions.
// Usage: node echo-server.mjs HOST PORT
import net from 'node:net';

const [host, portText] = process.argv.slice(2);
const port = Number(portText);
if (!host || !Number.isInteger(port) || port < 1 || port > 65535) {
  console.error(`usage: echo-server.mjs HOST PORT (received host=${host} port=${portText})`);
  process.exit(2);
}

const server = net.createServer((socket) => {
  socket.on('error', (err) => console.error(`echo connection error: ${err.message}`));
  socket.pipe(socket);
});

server.on('error', (err) => {
  console.error(`echo server failed on ${host}:${port}: ${err.message}`);
  process.exit(1);
});

server.listen(port, host, () => console.log(`echo server listening on ${host}:${port}`));

