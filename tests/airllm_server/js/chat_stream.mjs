// Stream one chat through ollama-js and print what a user of the library sees, as one JSON line.
import { Ollama } from "ollama";

const [host, model, content, numPredict] = process.argv.slice(2);
const client = new Ollama({ host });
const parts = [];
const stream = await client.chat({
  model, stream: true, messages: [{ role: "user", content }],
  options: { temperature: 0, num_predict: Number(numPredict) },
});
for await (const part of stream) {
  parts.push(part.message.content);
}
console.log(JSON.stringify({ text: parts.join(""), parts: parts.length, empty: parts.filter((p) => p === "").length }));
