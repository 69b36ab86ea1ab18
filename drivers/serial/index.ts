export * from './errors.js';
export * from './transport.js';
export * from './list.js';
export * from './holder.js';
export * from './rs485.js';
