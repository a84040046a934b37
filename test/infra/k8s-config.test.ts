/**
 * The Kubernetes Deployments against the code and the image: each container runs a file the image
 * built from the repository's Dockerfile has, and the environment it gets (the ConfigMap, the Secret
 * as configmap.yaml tells the operator to create it, its own `env`) loads with the config module.
 */
import { ConfigSchema, loadConfig } from '@scribe-fleet/core';
import { byKind, containerEnv, documentedSecretKeys, imageLayout, k8sDocs, missingFromImage, operatorSecret } from './manifests';

const docs = k8sDocs();
const deployments = byKind(docs, 'Deployment');
const settings = new Set(Object.keys(ConfigSchema.shape));

it('documents the Secret’s keys, each a real setting', () => {
  const keys = documentedSecretKeys();
  expect(keys).toEqual(expect.arrayContaining(['API_TOKENS', 'S3_ACCESS_KEY_ID', 'S3_SECRET_ACCESS_KEY']));
  expect(keys.filter((k) => !settings.has(k))).toEqual([]);
});

it('runs, in every Deployment, a file of the image built from the Dockerfile', () => {
  const layout = imageLayout();
  expect(deployments.length).toBeGreaterThanOrEqual(2);
  for (const d of deployments) {
    for (const c of d.spec.template.spec.containers) {
      // The image `docker build -t scribe-fleet .` makes (no registry: the operator pushes and renames it).
      expect({ container: c.name, image: c.image }).toEqual({ container: c.name, image: expect.stringMatching(/^scribe-fleet:/) });
      const command: string[] = c.command ?? layout.cmd;
      expect(command[0]).toBe('node');
      expect({ deployment: d.metadata.name, script: command[1], missing: missingFromImage(layout, command[1]!) }).toEqual({ deployment: d.metadata.name, script: command[1], missing: null });
    }
  }
});

it('gives every container a configuration that loads', () => {
  const secrets = { 'scribe-secrets': operatorSecret() };
  for (const d of deployments) {
    const env = containerEnv(docs, d, secrets);
    let error = '';
    try {
      const config = loadConfig(env);
      expect(config.API_TOKENS.length).toBeGreaterThan(0); // scribe-api refuses to start without one
    } catch (e) {
      error = (e as Error).message;
    }
    expect({ deployment: d.metadata.name, error }).toEqual({ deployment: d.metadata.name, error: '' });
  }
});
