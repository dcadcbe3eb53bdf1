// Apollo Client with its automatic persisted queries link: the first query goes as a hash
// alone, is not known, and is sent again with its text; the same query again goes as the
// hash alone and is answered from it, by POST and by GET.
import { ApolloClient, HttpLink, InMemoryCache, gql } from '@apollo/client/core/index.js';
import { createPersistedQueryLink } from '@apollo/client/link/persisted-queries/index.js';
import { createHash } from 'node:crypto';

const origin = process.argv[2];
const sent = [];
const countingFetch = (url, options) => {
  const body = options.body ? JSON.parse(options.body) : Object.fromEntries(new URL(url).searchParams);
  sent.push({ method: options.method ?? 'GET', withQuery: Boolean(body.query) });
  return fetch(url, options);
};
const sha256 = (text) => createHash('sha256').update(text).digest('hex');
const query = gql`
  query Counts {
    dataset {
      stores
      polledStores
    }
  }
`;

for (const useGETForHashedQueries of [false, true]) {
  const client = new ApolloClient({
    cache: new InMemoryCache(),
    link: createPersistedQueryLink({ sha256, useGETForHashedQueries }).concat(
      new HttpLink({ uri: `${origin}/graphql`, fetch: countingFetch }),
    ),
  });
  for (let run = 0; run < 2; run++) {
    const result = await client.query({ query, fetchPolicy: 'network-only' });
    if (typeof result.data.dataset.stores !== 'number') {
      console.error(`apollo.mjs: ${JSON.stringify(result)}`);
      process.exit(1);
    }
  }
}
console.log(`apollo.mjs: ${sent.map((s) => `${s.method}${s.withQuery ? '+query' : ''}`).join(' ')}`);
