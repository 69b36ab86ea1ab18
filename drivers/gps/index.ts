export * from './nmea.js';
export * from './driver.js';
