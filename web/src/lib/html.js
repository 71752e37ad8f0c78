// lib/html.js — Preact with htm tagged templates: JSX-like markup without a JSX build step.
import { h } from 'preact';
import htm from 'htm';

export const html = htm.bind(h);
