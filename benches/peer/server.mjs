// The peer Alongside is measured against: the smallest useful WebSocket chat server on
// Node's `ws` package. Every text frame from any socket is sent to every socket. It
// stores nothing and checks nothing, which is as fast as a chat server can be made in
// this style. Prints "peer listening on http://ADDR:PORT" once ready.

import { WebSocketServer } from 'ws';

const port = Number(process.argv[2] || 0);
const server = new WebSocketServer({ host: '127.0.0.1', port, perMessageDeflate: false, clientTracking: true });

server.on('connection', (socket) => {
  socket.on('message', (data, isBinary) => {
    if (isBinary) return;
    for (const client of server.clients) {
      if (client.readyState === 1) client.send(data, { binary: false });
    }
  });
});

server.on('listening', () => {
  const { address, port: bound } = server.address();
  console.log(`peer listening on http://${address}:${bound}`);
});
