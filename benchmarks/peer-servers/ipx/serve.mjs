// ipx (sharp, libvips) on loopback for cropstack's peer benchmarks (benchmarks/peers.py):
//   node serve.mjs DIRECTORY PORT
// serves the images of DIRECTORY at http://127.0.0.1:PORT/{modifiers}/{file} until stopped.
import { createServer } from "node:http";
import { createIPX, createIPXNodeServer, ipxFSStorage } from "ipx";

const [dir, port] = process.argv.slice(2);
const ipx = createIPX({ storage: ipxFSStorage({ dir }) });
createServer(createIPXNodeServer(ipx)).listen(Number(port), "127.0.0.1");
