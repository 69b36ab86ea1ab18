// CBV 2.0 / GS1 Web Vocabulary terms the gateway uses, and the JSON-LD bits of
// its events. The word lists are the bare CBV terms of the EPCIS 2.0 JSON-LD
// context (the JSON Schema enumerates the same), so config validation can say
// "did you mean …" and the event hash can expand them to their Web URIs.

/** The JSON-LD context every EPCIS 2.0 document and stand-alone event names. */
export const EPCIS_CONTEXT = 'https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld';

/**
 * ISCM Edge's extension namespace: event fields the standard has no place for
 * (`iscm:timeSource`, `iscm:count`, `iscm:rule`, …) are CURIEs with this
 * prefix, declared in each event's @context. Changing it changes every eventID.
 */
export const ISCM_PREFIX = 'iscm';
export const ISCM_NS = 'https://ns.iscm-edge.dev/epcis/';

/** The @context of every event the gateway builds (frozen: shared by all events). */
export const EVENT_CONTEXT: readonly (string | Readonly<Record<string, string>>)[] = Object.freeze([EPCIS_CONTEXT, Object.freeze({ [ISCM_PREFIX]: ISCM_NS })]);

export const CBV = 'https://ref.gs1.org/cbv/';
export const GS1_VOC = 'https://gs1.org/voc/';

export const BIZ_STEPS = [
  'accepting', 'arriving', 'assembling', 'collecting', 'commissioning', 'consigning', 'creating_class_instance', 'cycle_counting',
  'decommissioning', 'departing', 'destroying', 'disassembling', 'dispensing', 'encoding', 'entering_exiting', 'holding', 'inspecting',
  'installing', 'killing', 'loading', 'other', 'packing', 'picking', 'receiving', 'removing', 'repackaging', 'repairing', 'replacing',
  'reserving', 'retail_selling', 'sampling', 'sensor_reporting', 'shipping', 'staging_outbound', 'stock_taking', 'stocking', 'storing',
  'transporting', 'unloading', 'unpacking', 'void_shipping',
] as const;

export const DISPOSITIONS = [
  'active', 'available', 'completeness_inferred', 'completeness_verified', 'conformant', 'container_closed', 'container_open', 'damaged',
  'destroyed', 'dispensed', 'disposed', 'encoded', 'expired', 'in_progress', 'in_transit', 'inactive', 'mismatch_class', 'mismatch_instance',
  'mismatch_quantity', 'needs_replacement', 'no_pedigree_match', 'non_conformant', 'non_sellable_other', 'partially_dispensed', 'recalled',
  'reserved', 'retail_sold', 'returned', 'sellable_accessible', 'sellable_not_accessible', 'stolen', 'unavailable', 'unknown',
] as const;

export const BIZ_TRANSACTION_TYPES = ['bol', 'cert', 'desadv', 'inv', 'pedigree', 'po', 'poc', 'prodorder', 'recadv', 'rma', 'testprd', 'testres', 'upevt'] as const;
export const SOURCE_DEST_TYPES = ['owning_party', 'possessing_party', 'location'] as const;
export const ERROR_REASONS = ['did_not_occur', 'incorrect_data'] as const;
export const COMPONENTS = ['x', 'y', 'z', 'axial_distance', 'azimuth', 'height', 'spherical_radius', 'polar_angle', 'elevation_angle', 'easting', 'northing', 'latitude', 'longitude', 'altitude'] as const;
export const SENSOR_ALERTS = ['ALARM_CONDITION', 'ERROR_CONDITION'] as const;

export const MEASUREMENT_TYPES = [
  'AbsoluteHumidity', 'AbsorbedDose', 'AbsorbedDoseRate', 'Acceleration', 'Radioactivity', 'Altitude', 'AmountOfSubstance',
  'AmountOfSubstancePerUnitVolume', 'Angle', 'AngularAcceleration', 'AngularMomentum', 'AngularVelocity', 'Area', 'Capacitance',
  'Conductance', 'Conductivity', 'Count', 'Density', 'Dimensionless', 'DoseEquivalent', 'DoseEquivalentRate', 'DynamicViscosity',
  'ElectricCharge', 'ElectricCurrent', 'ElectricCurrentDensity', 'ElectricFieldStrength', 'Energy', 'Exposure', 'Force', 'Frequency',
  'Illuminance', 'Inductance', 'Irradiance', 'KinematicViscosity', 'Length', 'LinearMomentum', 'Luminance', 'LuminousFlux',
  'LuminousIntensity', 'MagneticFlux', 'MagneticFluxDensity', 'MagneticVectorPotential', 'Mass', 'MassConcentration', 'MassFlowRate',
  'MassPerAreaTime', 'MemoryCapacity', 'MolalityOfSolute', 'MolarEnergy', 'MolarMass', 'MolarVolume', 'Power', 'Pressure', 'RadiantFlux',
  'RadiantIntensity', 'RelativeHumidity', 'Resistance', 'Resistivity', 'SolidAngle', 'SpecificVolume', 'Speed', 'SurfaceDensity',
  'SurfaceTension', 'Temperature', 'Time', 'Torque', 'Voltage', 'Volume', 'VolumeFlowRate', 'VolumeFraction', 'VolumetricFlux', 'Wavenumber',
] as const;

/** Prefixes the EPCIS 2.0 context itself defines (CURIEs with these expand without a local declaration). */
export const STANDARD_PREFIXES: Record<string, string> = {
  epcis: 'https://ref.gs1.org/epcis/',
  cbv: CBV,
  cbvmda: 'urn:epcglobal:cbv:mda:',
  gs1: GS1_VOC,
  rdfs: 'http://www.w3.org/2000/01/rdf-schema#',
  owl: 'http://www.w3.org/2002/07/owl#',
  xsd: 'http://www.w3.org/2001/XMLSchema#',
  dcterms: 'http://purl.org/dc/terms/',
};

/** The state of a door, as a custom measurement type (the GS1 vocabulary has none); stringValue "open" or "closed". */
export const DOOR_STATE_TYPE = `${ISCM_NS}DoorState`;
