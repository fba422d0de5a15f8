// Run by tests/gateway/test_node.py: the official Node.js SDK, unchanged, against the gateway.
// argv: address, JSON file {collection, rows, dim, query_vector, query, endpoint}; prints the hits as JSON.
const fs = require('fs');
const { MilvusClient, DataType, FunctionType } = require('@zilliz/milvus2-sdk-node');

const t0 = Date.now();
const lap = (what) => process.stderr.write(what + ' ' + (Date.now() - t0) + ' ms\n');
async function main() {
  const [address, inputPath] = process.argv.slice(2);
  const input = JSON.parse(fs.readFileSync(inputPath, 'utf8'));
  lap('loaded');
  const client = new MilvusClient({ address });
  const name = input.collection;
  await client.dropCollection({ collection_name: name });
  lap('dropped');
  const created = await client.createCollection({
    collection_name: name,
    fields: [
      { name: 'id', data_type: DataType.Int64, is_primary_key: true },
      { name: 'document', data_type: DataType.VarChar, max_length: 512 },
      { name: 'dense', data_type: DataType.FloatVector, dim: input.dim },
    ],
  });
  if (created.error_code !== 'Success') throw new Error('create: ' + JSON.stringify(created));
  lap('created');
  const inserted = await client.insert({ collection_name: name, data: input.rows });
  if (inserted.status.error_code !== 'Success') throw new Error('insert: ' + JSON.stringify(inserted.status));
  lap('inserted');
  await client.createIndex({ collection_name: name, field_name: 'dense', index_type: 'FLAT', metric_type: 'COSINE' });
  lap('indexed');
  await client.loadCollection({ collection_name: name });
  lap('loaded collection');
  const ranker = {
    name: 'vllm_semantic_ranker',
    type: FunctionType.RERANK,
    input_field_names: ['document'],
    params: { reranker: 'model', provider: 'vllm', queries: [input.query], endpoint: input.endpoint, maxBatch: 64 },
  };
  const res = await client.search({
    collection_name: name,
    data: [input.query_vector],
    anns_field: 'dense',
    limit: 5,
    output_fields: ['id', 'document'],
    rerank: ranker,
  });
  if (res.status.error_code !== 'Success') throw new Error('search: ' + JSON.stringify(res.status));
  lap('searched');
  const hybrid = await client.search({
    collection_name: name,
    data: [
      { data: [input.query_vector], anns_field: 'dense', params: {}, limit: 4 },
      { data: [input.other_vector], anns_field: 'dense', params: {}, limit: 4 },
    ],
    limit: 3,
    output_fields: ['id', 'document'],
    rerank: ranker,
  });
  if (hybrid.status.error_code !== 'Success') throw new Error('hybrid: ' + JSON.stringify(hybrid.status));
  // A bad ranker: the SDK's own error path with the gateway's message.
  const bad = await client.search({
    collection_name: name, data: [input.query_vector], anns_field: 'dense', limit: 5,
    rerank: { ...ranker, params: { ...ranker.params, queries: ['a', 'b'] } },
  });
  console.log(JSON.stringify({ hits: res.results, hybrid: hybrid.results, bad: bad.status }));
  await client.closeConnection();
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : String(err));
  process.exit(1);
});
