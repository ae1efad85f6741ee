// Reads a zip archive in the browser (the trajectory export): the central directory, then
// each entry's bytes. Stored entries are sliced; deflated ones go through the browser's own
// DecompressionStream. Enough for our exports, not a general-purpose zip library.

const EOCD = 0x06054b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;

/** Map of entry name -> () => Promise<Uint8Array>. Throws on a file that is not a zip. */
export async function readZip(blob) {
  const buffer = await blob.arrayBuffer();
  const view = new DataView(buffer);
  let end = -1;
  for (let i = buffer.byteLength - 22; i >= Math.max(0, buffer.byteLength - 65557); i--) {
    if (view.getUint32(i, true) === EOCD) {
      end = i;
      break;
    }
  }
  if (end < 0) throw new Error("not a zip archive");
  const count = view.getUint16(end + 10, true);
  let offset = view.getUint32(end + 16, true);
  const decoder = new TextDecoder();
  const entries = new Map();
  for (let n = 0; n < count; n++) {
    if (view.getUint32(offset, true) !== CENTRAL) throw new Error("corrupt zip directory");
    const method = view.getUint16(offset + 10, true);
    const compressed = view.getUint32(offset + 20, true);
    const nameLength = view.getUint16(offset + 28, true);
    const extraLength = view.getUint16(offset + 30, true);
    const commentLength = view.getUint16(offset + 32, true);
    const local = view.getUint32(offset + 42, true);
    const name = decoder.decode(new Uint8Array(buffer, offset + 46, nameLength));
    entries.set(name, () => entryBytes(buffer, view, local, method, compressed));
    offset += 46 + nameLength + extraLength + commentLength;
  }
  return entries;
}

async function entryBytes(buffer, view, local, method, size) {
  if (view.getUint32(local, true) !== LOCAL) throw new Error("corrupt zip entry");
  const start = local + 30 + view.getUint16(local + 26, true) + view.getUint16(local + 28, true);
  const raw = new Uint8Array(buffer, start, size);
  if (method === 0) return raw;
  if (method !== 8) throw new Error(`unsupported zip compression ${method}`);
  const stream = new Blob([raw]).stream().pipeThrough(new DecompressionStream("deflate-raw"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}
