// edgebench INA219 bridge: samples an INA219 at a fixed rate and prints one line per sample.
//
//   <micros>,<bus_register>,<shunt_register>\n      raw registers 0x02 and 0x01, decimal
//
// The host scales them (bus: (reg >> 3) * 4 mV, bit 1 CNVR, bit 0 OVF; shunt: signed, 10 uV per count,
// current = shunt voltage / shunt resistance), so this sketch needs no calibration and no float maths.
// Commands, one per line: "start", "stop", "mark <n>" (replies "#mark,<n>,<micros>"),
// "info" (replies "#info,edgebench-ina219,1,<rate_hz>,<shunt_milliohm>").
//
// Wiring (see README.md beside this file): INA219 VCC-3.3/5V, GND-GND, SDA-SDA, SCL-SCL; the board under
// test's supply runs through VIN+ -> VIN- (high side). Serial: 1,000,000 baud (24 bytes x 1 kHz needs
// 240 kbit/s; 115200 baud cannot carry 1 kHz).

#include <Wire.h>

const uint8_t INA219_ADDRESS = 0x40;
const uint32_t SAMPLE_RATE_HZ = 1000;
const uint32_t SERIAL_BAUD = 1000000;
const uint16_t SHUNT_MILLIOHM = 100;
// 32 V bus range, +-320 mV shunt range, 11-bit bus and shunt ADC (276 us each), continuous mode:
// both conversions fit in one 1 ms sample period.
const uint16_t INA219_CONFIG = 0x2000 | 0x1800 | (0x2 << 7) | (0x2 << 3) | 0x7;

const uint32_t PERIOD_US = 1000000UL / SAMPLE_RATE_HZ;
bool streaming = false;
uint32_t next_sample_us = 0;
char command[32];
uint8_t command_length = 0;

void writeRegister(uint8_t reg, uint16_t value) {
  Wire.beginTransmission(INA219_ADDRESS);
  Wire.write(reg);
  Wire.write(value >> 8);
  Wire.write(value & 0xFF);
  Wire.endTransmission();
}

uint16_t readRegister(uint8_t reg) {
  Wire.beginTransmission(INA219_ADDRESS);
  Wire.write(reg);
  Wire.endTransmission(false);
  Wire.requestFrom(INA219_ADDRESS, (uint8_t)2);
  uint16_t high = Wire.read();
  return (high << 8) | Wire.read();  // registers are big-endian
}

void handleCommand() {
  command[command_length] = '\0';
  if (strcmp(command, "start") == 0) {
    streaming = true;
    next_sample_us = micros();
  } else if (strcmp(command, "stop") == 0) {
    streaming = false;
  } else if (strncmp(command, "mark", 4) == 0) {
    Serial.print("#mark,");
    Serial.print(command + 5);
    Serial.print(',');
    Serial.println(micros());
  } else if (strcmp(command, "info") == 0) {
    Serial.print("#info,edgebench-ina219,1,");
    Serial.print(SAMPLE_RATE_HZ);
    Serial.print(',');
    Serial.println(SHUNT_MILLIOHM);
  }
  command_length = 0;
}

void setup() {
  Serial.begin(SERIAL_BAUD);
  Wire.begin();
  Wire.setClock(400000);  // fast mode: two register reads take ~0.2 ms
  writeRegister(0x00, INA219_CONFIG);
}

void loop() {
  while (Serial.available()) {
    char c = Serial.read();
    if (c == '\n' || c == '\r') {
      if (command_length) handleCommand();
    } else if (command_length < sizeof(command) - 1) {
      command[command_length++] = c;
    }
  }
  if (!streaming) return;
  uint32_t now = micros();
  if ((int32_t)(now - next_sample_us) < 0) return;
  next_sample_us += PERIOD_US;  // a fixed grid: late samples do not shift the ones after them
  uint16_t bus = readRegister(0x02);
  int16_t shunt = (int16_t)readRegister(0x01);
  Serial.print(now);
  Serial.print(',');
  Serial.print(bus);
  Serial.print(',');
  Serial.println(shunt);
}
