# The GPU worker: @tensorflow/tfjs-node-gpu 4.22.0 loads libtensorflow 2.9.1, built against CUDA 11.2 and cuDNN
# 8.1. CUDA 11.8 and cuDNN 8.9 keep those libraries' sonames (libcudart.so.11.0, libcublas.so.11,
# libcudnn.so.8) and ABI within their major versions, and 11.8 is the first CUDA 11 that knows Hopper (sm_90).
# Needs an NVIDIA driver >= 520 on the node (or >= 450.80.02 through CUDA minor-version compatibility).
# Build from the repository root:
#   docker build -f deploy/container/worker-gpu.Dockerfile \
#     --build-arg TFJS_NODE_CDN_STORAGE=https://mirror.example.com/ \
#     -t registry.example.com/phalanx-worker-gpu:0.1.0 .
# TFJS_NODE_CDN_STORAGE: base URL of a mirror holding tensorflow/libtensorflow/libtensorflow-gpu-linux-x86_64-2.9.1.tar.gz
# (default: Google's storage). TFJS_BINDING_HOST_MIRROR: mirror of the prebuilt addon; without it the addon is
# built from source here. At start the worker logs the backend in use ("tfjs backend: tensorflow-gpu — …").
ARG NODE_IMAGE=node:20.20.2-bookworm-slim
ARG CUDA_IMAGE=nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04

FROM ${NODE_IMAGE} AS node

FROM ${CUDA_IMAGE} AS build
ARG TFJS_NODE_CDN_STORAGE=""
ARG TFJS_BINDING_HOST_MIRROR=""
# Compilers for the addon's source build (its fallback when no prebuilt binary can be fetched).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=node /usr/local/lib/node_modules /usr/local/lib/node_modules
COPY --from=node /usr/local/include/node /usr/local/include/node
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm
WORKDIR /opt/phalanx
COPY package.json package-lock.json ./
# Install scripts off for every dependency, then run the one this image needs explicitly: the same on npm 10
# (which would run them all) and npm 11 (which blocks them unless allowed).
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund
ENV npm_config_nodedir=/usr/local
# Its install script downloads libtensorflow into deps/lib and fetches (or builds) the addon with node-pre-gyp,
# which it looks up on PATH. The build fails unless both files are there.
RUN cd node_modules/@tensorflow/tfjs-node-gpu \
 && PATH="/opt/phalanx/node_modules/.bin:${PATH}" \
    TFJS_NODE_CDN_STORAGE="${TFJS_NODE_CDN_STORAGE}" \
    npm_config_tfjs_binding_binary_host_mirror="${TFJS_BINDING_HOST_MIRROR}" \
    node scripts/install.js gpu download \
 && test -f deps/lib/libtensorflow.so.2.9.1 \
 && ls lib/napi-v*/tfjs_binding.node
COPY proto ./proto
COPY scripts/gen-proto.mjs ./scripts/gen-proto.mjs
RUN node scripts/gen-proto.mjs
COPY bin ./bin
COPY src ./src
COPY data ./data

FROM ${CUDA_IMAGE}
ENV NODE_ENV=production HOME=/tmp PHALANX_BACKEND=tensorflow-gpu
COPY --from=node /usr/local/bin/node /usr/local/bin/node
WORKDIR /opt/phalanx
COPY --from=build /opt/phalanx /opt/phalanx
USER 10001:10001
ENTRYPOINT ["node", "/opt/phalanx/bin/phalanx.js"]
CMD ["worker", "--once"]
