# One image for the worker, the API and the CLI. Debian (bookworm) has every system package the
# fleet needs: ffmpeg (decoding), and the embedded offline recogniser (pocketsphinx + its model).
FROM node:20-bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ffmpeg pocketsphinx pocketsphinx-en-us python3-pocketsphinx ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.base.json ./
COPY packages ./packages
COPY apps ./apps
COPY infra/local ./infra/local
# `npm install` (not `npm ci`): it follows the lockfile and tolerates missing optional platform binaries.
RUN npm install --no-audit --no-fund && npx tsc -b && npm prune --omit=dev --no-audit --no-fund
ENV NODE_ENV=production
USER node
CMD ["node", "apps/worker/dist/main.js"]
