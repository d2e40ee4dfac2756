# Berth broker image: one process, one SQLite file under /data.
FROM node:20-bookworm-slim AS build
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json tsconfig.json ./
COPY protocol protocol
COPY storage storage
COPY server server
COPY clients clients
COPY test test
COPY bench bench
RUN npm ci && npm prune --omit=dev

FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production BERTH_HOST=0.0.0.0 BERTH_DATA=/data
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules node_modules
COPY --from=build /app/dist dist
COPY --from=build /app/storage/migrations storage/migrations
VOLUME /data
EXPOSE 7700
USER node
ENTRYPOINT ["node", "dist/bin/berth.js"]
CMD ["serve"]
