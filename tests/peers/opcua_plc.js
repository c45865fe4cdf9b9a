// An OPC UA-only PLC stand-in for the test suite: a node-opcua server (an implementation
// independent of asyncua) with the result tags a PLC would offer the edge node.
//
//   node tests/peers/opcua_plc.js PORT [ACK_DELAY_MS]
//
// Listens on opc.tcp://127.0.0.1:PORT/plc; namespace urn:reman-edge:test-plc, string node ids
// under Objects/PLC: Code, Credit, Seq, Err, Revision, Ack (Int32), CoreId (String),
// ResultReady (Boolean). When the node writes ResultReady true, the stand-in reads the set,
// prints it, and after ACK_DELAY_MS writes Seq to Ack, as a PLC that took the result would.
// One line per event on stdout, "PLC " and JSON (node-opcua logs there too): {"event":"listening"}, {"event":"result",...},
// {"event":"ack","seq":N}.
"use strict";

const { OPCUAServer } = require("node-opcua-server");
const { DataType } = require("node-opcua-variant");
const { MessageSecurityMode, SecurityPolicy } = require("node-opcua-secure-channel");

const port = parseInt(process.argv[2], 10);
const ackDelayMs = parseInt(process.argv[3] || "0", 10);
const NS = "urn:reman-edge:test-plc";

function say(obj) {
  process.stdout.write("PLC " + JSON.stringify(obj) + "\n");
}

async function main() {
  const server = new OPCUAServer({
    port,
    hostname: "127.0.0.1",
    resourcePath: "/plc",
    securityModes: [MessageSecurityMode.None],
    securityPolicies: [SecurityPolicy.None],
    allowAnonymous: true,
    buildInfo: { productName: "reman-edge test PLC" },
  });
  await server.initialize();
  const addressSpace = server.engine.addressSpace;
  const ns = addressSpace.registerNamespace(NS);
  const plc = ns.addObject({ organizedBy: addressSpace.rootFolder.objects, browseName: "PLC" });
  const tags = {};
  const add = (name, dataType, value) => {
    tags[name] = ns.addVariable({
      componentOf: plc,
      nodeId: `s=PLC.${name}`,
      browseName: name,
      dataType,
      accessLevel: "CurrentRead | CurrentWrite",
      userAccessLevel: "CurrentRead | CurrentWrite",
      value: { dataType: DataType[dataType], value },
    });
  };
  for (const name of ["Code", "Credit", "Seq", "Err", "Revision", "Ack"]) add(name, "Int32", 0);
  add("CoreId", "String", "");
  add("ResultReady", "Boolean", false);

  const value = (name) => tags[name].readValue().value.value;
  tags.ResultReady.on("value_changed", (dataValue) => {
    if (dataValue.value.value !== true) return;
    const seq = value("Seq");
    say({
      event: "result",
      code: value("Code"),
      credit: value("Credit"),
      err: value("Err"),
      revision: value("Revision"),
      core: value("CoreId"),
      seq,
    });
    setTimeout(() => {
      tags.Ack.setValueFromSource({ dataType: DataType.Int32, value: seq });
      say({ event: "ack", seq });
    }, ackDelayMs);
  });

  await server.start();
  say({ event: "listening", endpoint: server.getEndpointUrl() });
  const stop = async () => {
    await server.shutdown(0);
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((err) => {
  say({ event: "error", message: String(err && err.stack ? err.stack : err) });
  process.exit(1);
});
